"""The main job end to end: `juno-bridge demo --events 200`, every method that is built."""
import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from juno_bridge import paths


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    done = subprocess.run([sys.executable, "-m", "juno_bridge.cli", "demo", "--events", "200", "--out", str(out),
                           "--resolution-events", "500", "--quiet"], capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr
    return out, done.stdout


def test_demo_runs_every_built_method_from_python_and_cpp(demo):
    out, stdout = demo
    summary = json.loads((out / "summary.json").read_text())
    seen = {(r["method"], r["caller"]) for r in summary["results"]}
    expected = {"ONNX Runtime", "baseline: centroid (ONNX Runtime)"}
    if importlib.util.find_spec("torch"):
        expected |= {"Python algorithm (torch)"}
    if "torch" in paths.plugins():
        expected |= {"libtorch AOTInductor (.pt2)", "libtorch TorchScript (.pt)"}
    if "tf" in paths.plugins():
        expected |= {"TensorFlow SavedModel (Keras)"}
    assert seen == {(m, c) for m in expected for c in ("python", "c++")}
    for r in summary["results"]:
        assert r["events_per_s"] > 0
        if r["method"].startswith("baseline"):
            assert r["max_deviation"] is None   # another model: not compared
        else:
            assert r["max_deviation"] < 1e-3, r  # every method runs the same network as the torch module
    assert "Which method to use" in stdout and "network / baseline" in stdout
    assert "The network costs" in stdout and summary["network_cost"]
    assert {row["events"] for row in summary["resolution"].values()} == {500}


def test_demo_leaves_only_its_results(demo):
    out, stdout = demo
    left = sorted(p.name for p in out.iterdir())
    assert "events.jbhits" not in left, left  # the C++ host's input (216 MB at the default 2,000 events)
    assert {"summary.json", "juno-bridge-demo.png", "juno-bridge-resolution.png"} <= set(left), left


def test_demo_writes_a_valid_png(demo):
    out, stdout = demo
    png = out / "juno-bridge-demo.png"
    assert str(png.resolve()) in stdout
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image
    image = matplotlib.image.imread(png)
    assert image.shape[0] > 300 and image.shape[1] > 900 and np.ptp(image) > 0
