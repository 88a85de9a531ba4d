"""juno-bridge in a process that carries other C++ runtimes, run as its own process (a crash is then an exit
status the caller reads, not the end of the test run):

    python other_runtimes_smoke.py ORDER DEFAULT_ONNX TINY_PT2 TINY_PT

ORDER says what is imported before juno_bridge: "numpy", "numpy,torch,tensorflow" or "after" (juno_bridge
first, then torch and TensorFlow). Each check prints "PASS name" or "FAIL name: why"; the last line is
"N passed, M failed" and the exit status is 0 only when none failed."""
from __future__ import annotations

import importlib
import os
import sys
import traceback
from pathlib import Path

order = sys.argv[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if order != "after":
    for name in order.split(","):
        importlib.import_module(name)

import numpy as np  # noqa: E402

import juno_bridge as jb  # noqa: E402

if order == "after":
    import tensorflow  # noqa: E402, F401
    import torch  # noqa: E402, F401

import torch  # noqa: E402  (the reference for the torch models; already loaded in every order but "numpy")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for python:helpers.pyalgos:linear
from helpers import pyalgos  # noqa: E402

default_onnx, tiny_pt2, tiny_pt = (Path(p) for p in sys.argv[2:5])
passed, failed = 0, 0


def check(name):
    def run(body):
        global passed, failed
        try:
            body()
        except Exception:  # noqa: BLE001  (every failure is reported, the next check still runs)
            failed += 1
            print(f"FAIL {name}: {traceback.format_exc().strip().splitlines()[-1]}", flush=True)
        else:
            passed += 1
            print(f"PASS {name}", flush=True)
    return run


rng = np.random.default_rng(7)
pmt = np.zeros((4, 2, 17612), np.float32)
pmt[:, 0] = rng.poisson(0.3, (4, 17612))
pmt[:, 1] = np.where(pmt[:, 0] > 0, rng.uniform(0, 300, (4, 17612)), 0)
reference = {}


@check("onnx shared session by path")
def _():
    with jb.Session(default_onnx) as s:
        reference.update(s.run({"pmt": pmt}))
    assert np.isfinite(reference["vertex"]).all() and reference["energy"].shape == (4,)


@check("onnx unshared session by path, and two shared ones on one backend session")
def _():
    with jb.Session(default_onnx, shared=False) as s:
        got = s.run({"pmt": pmt})
    for name, value in reference.items():
        np.testing.assert_array_equal(got[name], value)
    with jb.Session(default_onnx) as a, jb.Session(default_onnx) as b:
        assert a._stats()["backend_id"] == b._stats()["backend_id"]


@check("onnx by bytes, shared and not")
def _():
    data = default_onnx.read_bytes()
    for shared in (True, False):
        with jb.Session(data, shared=shared) as s:
            got = s.run({"pmt": pmt})
        for name, value in reference.items():
            np.testing.assert_array_equal(got[name], value)


@check("run_async")
def _():
    with jb.Session(default_onnx) as s:
        got = s.run_async({"pmt": pmt}).result(timeout=60)
    for name, value in reference.items():
        np.testing.assert_array_equal(got[name], value)


@check("python: model")
def _():
    x = rng.standard_normal((3, 2 * pyalgos.N)).astype(np.float32)
    with jb.Session("python:helpers.pyalgos:linear") as s:
        got = s.run({"x": x})["y"]
    np.testing.assert_allclose(got, x @ pyalgos.W + pyalgos.BIAS, rtol=1e-6, atol=1e-6)


def torch_reference(x):
    from helpers.torch_models import TINY
    with torch.no_grad():
        return TINY(torch.from_numpy(x)).numpy()


@check(".pt2 (AOTInductor)")
def _():
    x = rng.standard_normal((5, 8)).astype(np.float32)
    with jb.Session(tiny_pt2) as s:
        np.testing.assert_allclose(s.run({"x": x})["y"], torch_reference(x), rtol=1e-5, atol=1e-6)


@check(".pt (TorchScript) by path and by bytes")
def _():
    x = rng.standard_normal((5, 8)).astype(np.float32)
    for model in (tiny_pt, tiny_pt.read_bytes()):
        with jb.Session(model, backend="torch") as s:
            np.testing.assert_allclose(s.run({"x": x})["y"], torch_reference(x), rtol=1e-5, atol=1e-6)


@check("errors thrown in the core reach the caller: a missing model, a wrong dtype, a wrong shape")
def _():
    for model, error in ((default_onnx.with_name("absent.onnx"), jb.ModelLoadError),
                         (default_onnx.parent / "absent.pt2", jb.ModelLoadError)):
        try:
            jb.Session(model, shared=False)
        except error as e:
            assert str(model) in str(e), e
        else:
            raise AssertionError(f"{model} opened")
    with jb.Session(default_onnx) as s:
        for bad, error in ((pmt.astype(np.float64), jb.InputTypeError), (pmt[:, :1].copy(), jb.InputError)):
            try:
                s.run({"pmt": bad})
            except error as e:
                assert "'pmt'" in str(e), e
            else:
                raise AssertionError("a bad input ran")


@check("errors of a plugin reach the caller: a .pt2 given the wrong shape")
def _():
    with jb.Session(tiny_pt2) as s:
        try:
            s.run({"x": np.ones((3, 9), np.float32)})
        except jb.InputError as e:
            assert "input 'x'" in str(e), e
        else:
            raise AssertionError("a bad input ran")


print(f"{passed} passed, {failed} failed", flush=True)
sys.exit(1 if failed else 0)
