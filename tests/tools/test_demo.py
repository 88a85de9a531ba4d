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


def test_demo_resolution_at_every_energy(demo):
    """The resolution table and summary: 0.5, 1, 2, 5 and 8 MeV, finite standard deviations and biases,
    one printed row per energy beside JUNO's 3 % / sqrt(E)."""
    out, stdout = demo
    summary = json.loads((out / "summary.json").read_text())["resolution"]
    assert list(summary) == ["0.5 MeV", "1 MeV", "2 MeV", "5 MeV", "8 MeV"]
    for label, row in summary.items():
        energy = float(label.split()[0])
        assert row["juno_goal_percent"] == pytest.approx(3 / np.sqrt(energy))
        for name in ("network", "baseline", "floor"):
            r = row[name]
            assert np.isfinite(r["energy_percent"]) and r["energy_percent"] > 0, (label, name)
            assert np.isfinite(r["energy_bias_percent"]) and np.isfinite(r["energy_bias_error_percent"])
        assert 0 < row["network"]["vertex_cm"] < row["baseline"]["vertex_cm"]
    # the resolution improves with energy, for both models (500 events: sigma known to 3 %)
    for name in ("network", "baseline"):
        sigmas = [row[name]["energy_percent"] for row in summary.values()]
        assert sigmas == sorted(sigmas, reverse=True), (name, sigmas)
    rows = [line.split() for line in stdout.splitlines() if line.split()[:1] in (["0.5"], ["1"], ["2"], ["5"], ["8"])]
    assert [r[0] for r in rows] == ["0.5", "1", "2", "5", "8"] and all(len(r) == 11 for r in rows)
    assert "3%/sqrt(E)" in stdout and "standard deviation" in stdout


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
    assert image.shape[:2] == (1100, 1650) and np.ptp(image) > 0   # 2 x 2 panels (tests/tools/test_demo_plots.py)
    resolution_png = out / "juno-bridge-resolution.png"
    assert str(resolution_png.resolve()) in stdout
    image = matplotlib.image.imread(resolution_png)
    assert image.shape[:2] == (950, 1700) and np.ptp(image) > 0     # 2 x 3 panels
