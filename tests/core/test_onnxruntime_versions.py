"""Version independence: the same bridge runs on an older ONNX Runtime release selected by the environment
variable or the `onnxruntime=` option, and refuses clearly one whose C API is below our minimum.

Each case runs in a fresh interpreter: a process loads its default runtime once and keeps it."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import juno_bridge as jb
from helpers import onnx_models
from helpers.reference import assert_bitwise_equal

CHILD = """
import json, sys
import numpy as np
import juno_bridge as jb
mode, library, models, feeds, out = sys.argv[1:6]
options = {"onnxruntime": library} if mode == "option" else {}
report = {}
try:
    data = np.load(feeds)
    results = {}
    for name, path in json.loads(models).items():
        s = jb.Session(path, intra_op_threads=1, inter_op_threads=1, **options)
        inputs = {i.name: data[f"{name}.{i.name}"] for i in s.inputs()}
        for key, value in s.run(inputs).items():
            results[f"{name}.{key}"] = value
        report[name] = {"inputs": [i.name for i in s.inputs()], "outputs": [o.name for o in s.outputs()]}
    np.savez(out, **results)
    report["info"] = jb.onnxruntime_info(library if mode == "option" else None)
except jb.Error as e:
    report["error"] = [type(e).__name__, str(e)]
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def workload(model_path):
    """Models an older runtime also reads (opset 20), their inputs, and the results of the default runtime."""
    rng = np.random.default_rng(3)
    models = {"add": model_path("add_f32", onnx_models.add, np.float32),
              "multi_io": model_path("multi_io", onnx_models.multi_io),
              "cast": model_path("cast_i32_f16", onnx_models.cast, np.int32, np.float16),
              "dense": model_path("dense_64_32_4", onnx_models.dense, 64, 32, 4)}
    feeds = {"add.a": rng.standard_normal((5, 7)).astype(np.float32),
             "add.b": rng.standard_normal((5, 7)).astype(np.float32),
             "multi_io.a": rng.standard_normal((4, 3)).astype(np.float32),
             "multi_io.b": rng.standard_normal((4, 3)).astype(np.float32),
             "multi_io.c": rng.standard_normal(3).astype(np.float32),
             "cast.x": rng.integers(-3000, 3000, 50).astype(np.int32),
             "dense.x": rng.standard_normal((16, 64)).astype(np.float32)}
    expected = {}
    for name, path in models.items():
        s = jb.Session(path, intra_op_threads=1, inter_op_threads=1)
        for key, value in s.run({i.name: feeds[f"{name}.{i.name}"] for i in s.inputs()}).items():
            expected[f"{name}.{key}"] = value
    return models, feeds, expected


def run_with(library, mode, workload, tmp_path):
    models, feeds, _ = workload
    np.savez(tmp_path / "feeds.npz", **feeds)
    env = dict(os.environ)
    env.pop("JUNO_BRIDGE_ONNXRUNTIME", None)
    if mode == "env":
        env["JUNO_BRIDGE_ONNXRUNTIME"] = str(library)
    proc = subprocess.run([sys.executable, "-c", CHILD, mode, str(library),
                           json.dumps({k: str(v) for k, v in models.items()}), str(tmp_path / "feeds.npz"),
                           str(tmp_path / "results.npz")], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]  # an error, never a crash
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("mode", ["env", "option"])
def test_an_older_release_runs_the_same_models_with_the_same_results(old_onnxruntime, workload, tmp_path, mode):
    report = run_with(old_onnxruntime, mode, workload, tmp_path)
    assert "error" not in report, report["error"]
    info = report["info"]
    assert info["path"] == str(old_onnxruntime)
    assert info["version"] == "1.20.1" != jb.onnxruntime_info()["version"]
    assert info["api_version"] == 20  # the highest this release offers; we declare up to 31
    assert "CPUExecutionProvider" in info["providers"]
    _, _, expected = workload
    got = np.load(tmp_path / "results.npz")
    assert sorted(got.files) == sorted(expected)
    for key, value in expected.items():
        if key.startswith("dense."):  # a GEMM kernel may change between releases: close, not bitwise
            np.testing.assert_allclose(got[key], value, rtol=1e-5, atol=1e-5)
        else:  # elementwise arithmetic and casts are exact in every release
            assert_bitwise_equal(got[key], value, key)
    assert report["multi_io"] == {"inputs": ["a", "b", "c"], "outputs": ["s", "d", "n"]}


@pytest.mark.npm
@pytest.mark.parametrize("mode", ["env", "option"])
def test_a_release_below_the_minimum_api_is_refused_clearly(too_old_onnxruntime, workload, tmp_path, mode):
    report = run_with(too_old_onnxruntime, mode, workload, tmp_path)
    kind, message = report["error"]
    assert kind == "BackendUnavailableError"
    for fragment in ("1.15.1", "too old", "C API version 16", str(too_old_onnxruntime)):
        assert fragment in message, message


@pytest.mark.npm
def test_onnxruntime_info_of_another_library_in_process(old_onnxruntime, too_old_onnxruntime):
    # Reading facts about a library loads it but opens no session.
    info = jb.onnxruntime_info(old_onnxruntime)
    assert (info["version"], info["api_version"], info["path"]) == ("1.20.1", 20, str(old_onnxruntime))
    with pytest.raises(jb.BackendUnavailableError, match="too old.*16"):
        jb.onnxruntime_info(too_old_onnxruntime)


def test_the_default_runtime_is_the_installed_wheels():
    import onnxruntime

    info = jb.onnxruntime_info()
    assert info["version"] == onnxruntime.__version__
    assert info["api_version"] == min(31, int(onnxruntime.__version__.split(".")[1]))
    assert os.path.basename(info["path"]).startswith("libonnxruntime.so.1.")
