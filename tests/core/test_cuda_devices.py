"""CUDA memory in place, on a session that computes on the GPU (ONNX Runtime's CUDA provider): torch CUDA
tensors as inputs and out= buffers, read and written where they lie, agreeing with the CPU; pinned host
tensors and Session.empty's pinned memory too; outputs allocated on the GPU (output_device="cuda"); host
arrays staged through pinned blocks (staging="pinned"). These
need a GPU, onnxruntime-gpu (1.31.1) and torch built for CUDA, and skip without them (on every machine,
tests/core/test_dlpack_objects.py and test_session_empty.py test the same paths as far as a CPU goes, and
test_runtime_memory.py the DLPack export of outputs). On a GPU machine with those installed in .venv:

    cd tests && ../.venv/bin/pytest -q core/test_cuda_devices.py
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

import juno_bridge as jb

torch = pytest.importorskip("torch")
CUDA_PROVIDER = "CUDAExecutionProvider" in jb.onnxruntime_info()["providers"]
pytestmark = pytest.mark.skipif(not (torch.cuda.is_available() and CUDA_PROVIDER),
                                reason="needs a CUDA device visible to torch and onnxruntime-gpu's CUDA provider")


@pytest.fixture
def gpu_session(add_f32):
    with jb.Session(add_f32, providers=("cuda", "cpu"), require_providers=True) as s:
        yield s


def test_the_session_says_it_computes_on_the_gpu(gpu_session):
    assert gpu_session.providers[0] == "cuda"
    assert gpu_session.devices == ["cpu", "cuda:0"]


def test_cuda_tensors_are_read_and_written_where_they_lie(gpu_session):
    a = torch.randn(64, 3, device="cuda")
    b = torch.randn(64, 3, device="cuda")
    c = torch.full_like(a, float("nan"))
    address = c.data_ptr()
    torch.cuda.synchronize()  # ONNX Runtime reads on its own stream: torch's kernels must be done
    assert gpu_session.run({"a": a, "b": b}, out={"c": c})["c"] is c
    torch.cuda.synchronize()
    assert c.data_ptr() == address
    torch.testing.assert_close(c, a + b, rtol=1e-5, atol=0)
    on_host = gpu_session.run({"a": a, "b": b})["c"]  # outputs it allocates are host memory
    np.testing.assert_allclose(on_host, (a + b).cpu().numpy(), rtol=1e-5)


def test_host_and_pinned_tensors_agree_with_the_cpu_session(gpu_session, add_f32):
    a = torch.randn(64, 3).pin_memory()
    b = torch.randn(64, 3)
    expected = jb.Session(add_f32).run({"a": a.numpy(), "b": b.numpy()})["c"]
    np.testing.assert_allclose(gpu_session.run({"a": a, "b": b})["c"], expected, rtol=1e-5)
    out = torch.empty(64, 3).pin_memory()
    gpu_session.run({"a": a, "b": b}, out={"c": out})
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5)


def test_cuda_memory_on_a_session_computing_on_the_cpu_is_refused(add_f32):
    a = torch.randn(2, 3, device="cuda")
    with pytest.raises(jb.InputError, match="the buffer is in cuda:0 memory"):
        jb.Session(add_f32).run({"a": a, "b": a})


def test_a_cuda_graph_replays_bound_runs_on_new_values_in_the_same_buffers(add_f32):
    a, b, c = (torch.zeros(1, 3, device="cuda") for _ in range(3))
    with jb.Session(add_f32, providers=("cuda", "cpu"), require_providers=True, cuda_graph=True) as s:
        bound = s.bind({"a": a, "b": b}, out={"c": c})
        for k in range(3):  # captured on the first run, replayed on the next
            a.copy_(torch.full((1, 3), float(k), device="cuda"))
            b.copy_(torch.arange(3.0, device="cuda"))
            torch.cuda.synchronize()
            bound.run()
            torch.cuda.synchronize()
            torch.testing.assert_close(c, a + b, rtol=1e-5, atol=0)


def test_session_empty_is_pinned_memory_read_where_it_lies_and_agreeing_with_the_cpu(gpu_session, add_f32):
    a, b, c = gpu_session.empty((256, 3)), gpu_session.empty((256, 3)), gpu_session.empty((256, 3))
    assert a.base.device == b.base.device == c.base.device == "cuda_pinned"
    rng = np.random.default_rng(0)
    a[...] = rng.normal(size=(256, 3))
    b[...] = rng.normal(size=(256, 3))
    assert gpu_session.run({"a": a, "b": b}, out={"c": c})["c"] is c
    assert gpu_session._stats()["input_addresses"][0] == a.ctypes.data
    expected = jb.Session(add_f32).run({"a": np.array(a), "b": np.array(b)})["c"]
    np.testing.assert_allclose(c, expected, rtol=1e-5)
    gpu_session.close()
    a[...] = 1.0  # the pinned memory outlives the session (its model stays loaded until a, b, c go)
    assert a.sum() == 768.0


def test_the_batch_assembler_of_a_gpu_session_fills_pinned_memory(tmp_path):
    from helpers.onnx_models import dense, save

    s = jb.Session(save(dense(5, 4, 1, channels=2), tmp_path, "dense"), providers=("cuda", "cpu"),
                   require_providers=True)
    cpu = jb.Session(save(dense(5, 4, 1, channels=2), tmp_path, "dense_cpu"))
    events = [(np.array([0, 3]), np.ones(2, np.float32), np.full(2, 7.0, np.float32)),
              (np.array([4]), np.full(1, 2.0, np.float32), np.zeros(1, np.float32))]
    results = []
    for session in (s, cpu):
        asm = jb.BatchAssembler(session, batch_size=2, channels=2, num_pmts=5)
        asm.add(*events[0])
        results.append(asm.add(*events[1]))
    assert [len(r) for r in results] == [2, 2]
    for (_, got), (_, want) in zip(results[0], results[1]):
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-5)


def test_output_device_cuda_returns_outputs_on_the_gpu_agreeing_with_the_cpu(add_f32):
    a, b = torch.randn(64, 3), torch.randn(64, 3)
    expected = jb.Session(add_f32).run({"a": a.numpy(), "b": b.numpy()})["c"]
    with jb.Session(add_f32, providers=("cuda", "cpu"), output_device="cuda") as s:
        c = s.run({"a": a.numpy(), "b": b.numpy()})["c"]  # host inputs, the output allocated on the GPU
        assert isinstance(c, torch.Tensor) and c.device == torch.device("cuda", 0)
        np.testing.assert_allclose(c.cpu().numpy(), expected, rtol=1e-5)
        d = s.run({"a": c, "b": c})["c"]  # chained on the GPU: the output read where it lies
        np.testing.assert_allclose(d.cpu().numpy(), 2 * expected, rtol=1e-5)
        given = torch.empty(64, 3, device="cuda")
        assert s.run({"a": c, "b": c}, out={"c": given})["c"] is given  # out= buffers stay the caller's
        f = s.run_async({"a": a.numpy(), "b": b.numpy()}).result()["c"]
        assert f.device.type == "cuda"
        np.testing.assert_allclose(f.cpu().numpy(), expected, rtol=1e-5)


def test_a_device_output_is_runtime_memory_for_any_dlpack_consumer(add_f32, monkeypatch):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    with jb.Session(add_f32, providers=("cuda", "cpu"), output_device="cuda") as s:
        with monkeypatch.context() as without:  # as on a machine with neither torch nor CuPy installed
            without.setitem(sys.modules, "torch", None)
            without.setitem(sys.modules, "cupy", None)
            c = s.run({"a": a, "b": a})["c"]
        assert isinstance(c, jb.RuntimeMemory) and c.device == "cuda:0" and c.shape == (2, 3)
        assert c.__dlpack_device__() == (2, 0)
        t = torch.from_dlpack(c)
        assert t.data_ptr() == c.address
        np.testing.assert_array_equal(t.cpu().numpy(), 2 * a)


def test_staging_copies_host_arrays_through_pinned_blocks_agreeing_with_the_cpu(add_f32):
    """staging="pinned" on the CUDA provider: pageable numpy inputs and out= go through the session's pinned
    blocks (large ones split over threads), the results agree with the CPU, torch CUDA tensors pass as
    they are."""
    rng = np.random.default_rng(5)
    with jb.Session(add_f32, providers=("cuda", "cpu"), require_providers=True, staging="pinned") as s:
        for rows in (1, 64, 1 << 19):  # the last: 6 MB per array, copied by several threads
            a, b = (rng.standard_normal((rows, 3)).astype(np.float32) for _ in range(2))
            c = np.full_like(a, np.nan)
            before = s._stats()
            s.run({"a": a, "b": b}, out={"c": c})
            np.testing.assert_allclose(c, jb.Session(add_f32).run({"a": a, "b": b})["c"], rtol=1e-5)
            after = s._stats()
            assert after["inputs_staged"] - before["inputs_staged"] == 2
            assert after["bytes_staged"] - before["bytes_staged"] == 3 * a.nbytes
            assert a.ctypes.data not in after["input_addresses"]
        on_gpu = torch.ones(4, 3, device="cuda")
        before = s._stats()["bytes_staged"]
        torch.cuda.synchronize()
        np.testing.assert_allclose(s.run({"a": on_gpu, "b": on_gpu})["c"], 2 * np.ones((4, 3)), rtol=1e-6)
        assert s._stats()["bytes_staged"] == before
