"""Torch models through Session: the same numbers as the module in Python torch, for .pt2 and .pt,
over batch sizes and dtypes, and the same numbers as the model exported to ONNX."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import torch_models as tm
from helpers.torch_models import torch

import juno_bridge as jb

SUFFIXES = [".pt2", ".pt"]
PROPERTY = settings(max_examples=12, deadline=None)


def random_array(rng, dtype: str, shape):
    if dtype == "bool":
        return rng.integers(0, 2, shape).astype(np.bool_)
    if dtype.startswith(("int", "uint")):
        info = np.iinfo(dtype)
        return rng.integers(max(info.min, -1000), min(info.max, 1000), shape, endpoint=True).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


@pytest.fixture(scope="session", params=SUFFIXES)
def tiny_session(request):
    return jb.Session(tm.tiny(request.param))


@pytest.fixture(scope="session", params=SUFFIXES)
def all_dtypes_session(request):
    return jb.Session(tm.all_dtypes(request.param))


def test_exported_signature_describes_inputs_and_outputs(tiny_session):
    (x,), (y,) = tiny_session.inputs(), tiny_session.outputs()
    assert (x.name, x.dtype, x.shape, x.dim_names) == ("x", np.dtype(np.float32), (-1, 8), ("batch", None))
    assert (y.name, y.dtype, y.shape, y.dim_names) == ("y", np.dtype(np.float32), (-1, 4), ("batch", None))
    assert x.type_name == y.type_name == "tensor(float)"  # ONNX's spelling, as the onnxruntime backend
    assert tiny_session.backend == "torch"
    assert tiny_session.metadata()["custom"]["signature"] == "juno_bridge"


def test_all_dtypes_model_declares_each_dtype(all_dtypes_session):
    assert [str(i.dtype) for i in all_dtypes_session.inputs()] == list(tm.AllDTypes.DTYPES)
    assert [str(o.dtype) for o in all_dtypes_session.outputs()] == list(tm.AllDTypes.DTYPES)


@PROPERTY
@given(batch=st.integers(1, 64), seed=st.integers(0, 2**32 - 1))
def test_tiny_outputs_equal_python_torch_for_any_batch(tiny_session, batch, seed):
    x = random_array(np.random.default_rng(seed), "float32", (batch, 8))
    got = tiny_session.run({"x": x})["y"]
    with torch.inference_mode():
        want = tm.TINY(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@PROPERTY
@given(batch=st.integers(1, 40), seed=st.integers(0, 2**32 - 1))
def test_every_dtype_gives_python_torch_numbers_for_any_batch(all_dtypes_session, batch, seed):
    rng = np.random.default_rng(seed)
    names = [i.name for i in all_dtypes_session.inputs()]
    feeds = {n: random_array(rng, d, (batch, 5)) for n, d in zip(names, tm.AllDTypes.DTYPES)}
    got = all_dtypes_session.run(feeds)
    with torch.inference_mode():
        want = tm.ALL_DTYPES(*(torch.from_numpy(feeds[n]) for n in names))
    for out, w in zip(all_dtypes_session.outputs(), want):
        assert got[out.name].dtype == out.dtype
        np.testing.assert_array_equal(got[out.name], w.numpy(), err_msg=out.name)


@PROPERTY
@given(batch=st.integers(1, 64), seed=st.integers(0, 2**32 - 1))
def test_pt2_pt_and_onnx_agree_within_float_tolerance(batch, seed):
    sessions = [jb.Session(tm.tiny(".pt2")), jb.Session(tm.tiny(".pt")), jb.Session(tm.tiny_onnx())]
    x = random_array(np.random.default_rng(seed), "float32", (batch, 8))
    pt2, pt, onnx = (s.run({"x": x})["y"] for s in sessions)
    assert sessions[2].backend == "onnxruntime"
    np.testing.assert_allclose(pt2, onnx, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pt, onnx, rtol=1e-5, atol=1e-6)


def test_fixed_shape_model_declares_fixed_dims():
    s = jb.Session(tm.tiny(".pt2", dynamic_batch=False))
    assert s.inputs()[0].shape == (4, 8) and s.outputs()[0].shape == (4, 4)
    x = np.ones((4, 8), np.float32)
    np.testing.assert_allclose(s.run({"x": x})["y"], tm.TINY(torch.from_numpy(x)).detach().numpy(), rtol=1e-5)


def test_export_torch_is_lazy_and_import_does_not_need_torch():
    import subprocess
    import sys
    code = "import sys, juno_bridge; assert 'torch' not in sys.modules; print(callable(juno_bridge.export_torch))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_selected_outputs_only_are_computed_into_place(all_dtypes_session):
    names = [i.name for i in all_dtypes_session.inputs()]
    feeds = {n: random_array(np.random.default_rng(3), d, (4, 5)) for n, d in zip(names, tm.AllDTypes.DTYPES)}
    wanted = [all_dtypes_session.outputs()[k].name for k in (1, 7)]
    got = all_dtypes_session.run(feeds, outputs=wanted)
    full = all_dtypes_session.run(feeds)
    assert list(got) == wanted
    for n in wanted:
        np.testing.assert_array_equal(got[n], full[n])


def test_torchscript_opens_from_bytes_when_the_backend_is_named():
    s = jb.Session(tm.tiny(".pt").read_bytes(), backend="torch")
    x = np.ones((2, 8), np.float32)
    np.testing.assert_allclose(s.run({"x": x})["y"], jb.Session(tm.tiny(".pt")).run({"x": x})["y"])


def test_num_runners_option_bounds_concurrent_pt2_runs():
    s = jb.Session(tm.tiny(".pt2"), config={"num_runners": 1})
    x = np.ones((2, 8), np.float32)
    np.testing.assert_allclose(s.run({"x": x})["y"], jb.Session(tm.tiny(".pt2")).run({"x": x})["y"])
    with pytest.raises(jb.InvalidArgumentError, match="option 'num_runners' needs an integer"):
        jb.Session(tm.tiny(".pt2"), config={"num_runners": "many"})
