"""A C++ program built against the installed package runs a SavedModel without Python, and ONNX,
torch and TensorFlow sessions run side by side in one process (the C++ program and Python)."""
import subprocess
from pathlib import Path

import numpy as np
import pytest

from helpers import tf_models as tm
from helpers.native_build import CPP_TESTS, build_against_package, run_program

import juno_bridge


@pytest.fixture(scope="module")
def run_tf(tmp_path_factory) -> Path:
    return build_against_package(CPP_TESTS / "run_tf.cpp", tmp_path_factory.mktemp("run_tf") / "run_tf")


def _program_input(batch=3, features=8) -> np.ndarray:
    return (0.01 * np.arange(batch * features, dtype=np.float32) - np.float32(0.1)).reshape(batch, features)


def _outputs(stdout: str) -> dict:
    """'model output values...' lines -> {(model, output): values}."""
    rows = [line.split() for line in stdout.splitlines()]
    return {(r[0], r[1]): np.array(r[2:], np.float32) for r in rows}


def test_cpp_program_runs_a_saved_model_without_python(run_tf):
    done = run_program([run_tf, tm.tiny()])
    assert done.returncode == 0, done.stderr
    want = tm.affine_module().serve(tm.tf.constant(_program_input()))["y"].numpy().ravel()
    np.testing.assert_allclose(_outputs(done.stdout)[(str(tm.tiny()), "y")], want, rtol=1e-6, atol=1e-6)
    ldd = subprocess.run(["ldd", str(run_tf)], capture_output=True, text=True).stdout
    assert "libpython" not in ldd and "libtensorflow" not in ldd


@pytest.mark.torch
def test_cpp_program_runs_onnx_torch_and_tf_side_by_side(run_tf):
    from helpers import torch_models as tmt
    model, saved, onnx_path = tm.keras_mlp()
    pt2 = tmt.tiny(".pt2")
    done = run_program([run_tf, onnx_path, pt2, saved], timeout=300)
    assert done.returncode == 0, done.stderr
    got = _outputs(done.stdout)
    x = _program_input()
    want_keras = np.asarray(model.predict_on_batch(x)).ravel()
    np.testing.assert_allclose(got[(str(saved), "output_0")], want_keras, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got[(str(onnx_path), "output_0")], want_keras, rtol=1e-5, atol=1e-5)
    with tmt.torch.inference_mode():
        want_torch = tmt.TINY(tmt.torch.from_numpy(x)).numpy().ravel()
    np.testing.assert_allclose(got[(str(pt2), "y")], want_torch, rtol=1e-5, atol=1e-6)


@pytest.mark.torch
def test_python_runs_onnx_torch_and_tf_sessions_side_by_side():
    from helpers import torch_models as tmt
    model, saved, onnx_path = tm.keras_mlp()
    sessions = {"onnx": juno_bridge.Session(onnx_path), "torch": juno_bridge.Session(tmt.tiny(".pt2")),
                "tf": juno_bridge.Session(saved)}
    rng = np.random.default_rng(5)
    for batch in (1, 7, 64):  # interleaved: each run between runs of the other two
        x = tm.aligned(rng.standard_normal((batch, 8)).astype(np.float32))
        y_onnx = sessions["onnx"].run({"x": x})["output_0"]
        y_torch = sessions["torch"].run({"x": x})["y"]
        y_tf = sessions["tf"].run({"x": x})["output_0"]
        np.testing.assert_allclose(y_tf, y_onnx, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(y_tf, np.asarray(model.predict_on_batch(x)), rtol=1e-6, atol=1e-6)
        with tmt.torch.inference_mode():
            np.testing.assert_allclose(y_torch, tmt.TINY(tmt.torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-6)
