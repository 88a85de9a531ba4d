"""A .pt2 compiled for CUDA, where a GPU is present: host arrays are copied in, outputs copied out into the
caller's buffers or handed over as host memory, torch CUDA tensors are read and written in place, and the
session says where it runs. Without CUDA these
skip; the refusal there is tested in test_errors.py."""
import copy

import numpy as np
import pytest

from helpers import torch_models as tm

import juno_bridge as jb

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device visible to torch")


@pytest.fixture(scope="module")
def cuda_package(tmp_path_factory):
    path = tmp_path_factory.mktemp("cuda") / "tiny_cuda.pt2"
    module = copy.deepcopy(tm.TINY).to("cuda")
    jb.export_torch(module, (torch.randn(4, 8, device="cuda"),), path, input_names=["x"], output_names=["y"])
    return path


def test_a_cuda_package_runs_on_host_arrays_and_says_its_device(cuda_package):
    x = np.random.default_rng(1).standard_normal((5, 8)).astype(np.float32)
    with torch.no_grad():
        expected = tm.TINY(torch.from_numpy(x)).numpy()
    with jb.Session(cuda_package) as s:
        assert s.metadata()["custom"]["device"] == "cuda:0"
        allocated = s.run({"x": x})["y"]
        out = np.empty_like(expected)
        s.run({"x": x}, out={"y": out})
    np.testing.assert_allclose(allocated, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(out, allocated)


def test_a_cuda_package_reads_and_writes_cuda_tensors_in_place(cuda_package):
    x = torch.randn(5, 8, device="cuda")
    with torch.no_grad():
        expected = copy.deepcopy(tm.TINY).to("cuda")(x)
    y = torch.full_like(expected, float("nan"))
    address = y.data_ptr()
    torch.cuda.synchronize()
    with jb.Session(cuda_package) as s:
        assert s.devices == ["cpu", "cuda:0"]
        assert s.run({"x": x}, out={"y": y})["y"] is y
        assert y.data_ptr() == address and s._stats()["input_addresses"] == [x.data_ptr()]  # read in place
        torch.testing.assert_close(y, expected, rtol=1e-4, atol=1e-5)
        host = s.run({"x": x})["y"]  # allocated outputs come back to the host
        np.testing.assert_allclose(host, expected.cpu().numpy(), rtol=1e-4, atol=1e-5)


def test_a_torchscript_module_moved_to_the_gpu_takes_host_arrays_and_cuda_tensors():
    x = np.random.default_rng(2).standard_normal((5, 8)).astype(np.float32)
    with torch.no_grad():
        expected = tm.TINY(torch.from_numpy(x)).numpy()
    with jb.Session(tm.tiny(".pt"), config={"device": "cuda:0"}) as s:
        assert s.metadata()["custom"]["device"] == "cuda:0" and s.devices == ["cpu", "cuda:0"]
        np.testing.assert_allclose(s.run({"x": x})["y"], expected, rtol=1e-4, atol=1e-5)  # copied in and out
        on_gpu, y = torch.from_numpy(x).to("cuda"), torch.empty(5, 4, device="cuda")
        torch.cuda.synchronize()
        assert s.run({"x": on_gpu}, out={"y": y})["y"] is y  # read and written in place
        np.testing.assert_allclose(y.cpu().numpy(), expected, rtol=1e-4, atol=1e-5)


def test_session_empty_of_a_gpu_model_is_torchs_pinned_memory(cuda_package):
    x = np.random.default_rng(3).standard_normal((5, 8)).astype(np.float32)
    with torch.no_grad():
        expected = tm.TINY(torch.from_numpy(x)).numpy()
    with jb.Session(cuda_package) as s:
        staged = s.empty((5, 8))
        assert staged.base.device == "cuda_pinned" and staged.ctypes.data % 64 == 0
        staged[...] = x
        np.testing.assert_allclose(s.run({"x": staged})["y"], expected, rtol=1e-4, atol=1e-5)
        assert s._stats()["input_addresses"] == [staged.ctypes.data]  # the plugin read it where it lies
    staged[...] = 0.0  # outlives the session


@pytest.mark.parametrize("model", ["package", "torchscript"])
def test_output_device_cuda_leaves_the_outputs_on_the_gpu_as_torch_tensors(cuda_package, model):
    x = np.random.default_rng(3).standard_normal((5, 8)).astype(np.float32)
    with torch.no_grad():
        expected = tm.TINY(torch.from_numpy(x)).numpy()
    path, config = (cuda_package, None) if model == "package" else (tm.tiny(".pt"), {"device": "cuda"})
    with jb.Session(path, config=config, output_device="cuda") as s:
        y = s.run({"x": x})["y"]
        assert isinstance(y, torch.Tensor) and y.device == torch.device("cuda", 0)
        np.testing.assert_allclose(y.cpu().numpy(), expected, rtol=1e-4, atol=1e-5)
        z = s.run({"x": torch.from_numpy(x).to("cuda")})["y"]  # device in, device out: no host copy
        np.testing.assert_allclose(z.cpu().numpy(), expected, rtol=1e-4, atol=1e-5)


def test_staging_hands_a_gpu_model_host_arrays_in_torchs_pinned_memory(cuda_package):
    x = np.random.default_rng(4).standard_normal((5, 8)).astype(np.float32)
    with torch.no_grad():
        expected = tm.TINY(torch.from_numpy(x)).numpy()
    with jb.Session(cuda_package, staging="pinned") as s:
        y = np.empty((5, 4), np.float32)
        s.run({"x": x}, out={"y": y})
        np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)
        assert s._stats()["input_addresses"] != [x.ctypes.data]  # read from the session's pinned block
        assert s._stats()["bytes_staged"] == x.nbytes + y.nbytes
