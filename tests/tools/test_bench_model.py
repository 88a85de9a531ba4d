"""`juno-bridge bench --only model`: the trained default model in every built form, each through its own
library's Python API, juno-bridge from Python and the C++ loop, and the centroid; rows and printed targets
are checked, never the numbers."""
import json
import subprocess
import sys

import pytest

CALLERS = {"(1)": "python", "(2)": "python", "(3)": "c++"}


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """One quick run at B = 1 for the module's tests: (its JSON report, its printed report)."""
    out = tmp_path_factory.mktemp("bench") / "model.json"
    done = subprocess.run([sys.executable, "-m", "juno_bridge.cli", "bench", "--only", "model", "--quick",
                           "--batch", "1", "--iterations", "20", "--json", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text()), done.stdout


def check_form(bench, form: str) -> None:
    """Rows (1), (2), (3) of `form` with positive times and events/s, and its overhead targets printed."""
    report, stdout = bench
    rows = [r for r in report["rows"] if r["model"] == "net" and r["method"].split(" ")[0] == form]
    assert {r["method"].split(" ")[1]: r["caller"] for r in rows} == CALLERS, rows
    for r in rows:
        assert r["group"] == "model" and r["batch"] == 1
        assert 0 < r["median_us"] <= r["p90_us"], r
        assert r["extra"]["events_per_s"] == pytest.approx(1e6 / r["median_us"]), r
        assert f"{r['extra']['note']}" in stdout
    for kind in ("juno-bridge Python - own Python API, per event in us", "juno-bridge Python / own Python API"):
        text = f"model {form} B=1: {kind}"
        target = next(t for t in report["targets"] if t["text"] == text)
        assert target["ratio"] is not None and text in stdout


def test_onnx_form_and_the_centroid(bench):
    check_form(bench, ".onnx")
    report, stdout = bench
    centroid = {r["method"].split(" ")[2]: r["caller"] for r in report["rows"] if r["model"] == "cent"}
    assert centroid == {"(1)": "python", "(3)": "c++"}
    cost = next(t for t in report["targets"] if t["text"].startswith("model B=1: network / centroid"))
    assert cost["ratio"] > 0 and cost["target"] is None
    assert "network / centroid cost per event" in stdout and "machine:" in stdout


@pytest.mark.torch
@pytest.mark.parametrize("form", [".pt2", ".pt", "python:"])
def test_torch_forms(bench, form):
    check_form(bench, form)
    if form == "python:":  # the python: method from C++ against the torch module in Python, with its target
        report, stdout = bench
        text = "model python: B=1: juno-bridge C++ loop / the torch module in Python"
        target = next(t for t in report["targets"] if t["text"] == text)
        assert target["ratio"] > 0 and target["target"] == 1.1 and text in stdout


@pytest.mark.tf
def test_savedmodel_form(bench):
    check_form(bench, "SavedModel")
