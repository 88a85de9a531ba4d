"""`juno-bridge bench` runs every ONNX row side by side and reports the targets (numbers not asserted)."""
import json
import subprocess
import sys


def test_bench_measures_every_onnx_method_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "-m", "juno_bridge.cli", "bench", "--only", "onnx", "--quick",
                           "--model", "tiny", "--batch", "1", "--iterations", "50", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    methods = {r["method"][:5].split(" ")[0] for r in report["rows"]}
    assert methods == {"(a)", "(b)", "(c)", "(c')", "(c'')", "(d)", "(e)"}
    for r in report["rows"]:
        assert 0 < r["median_us"] <= r["p90_us"], r
    measured = [t for t in report["targets"] if t["text"].startswith("tiny B=1")]
    assert measured and all(t["ratio"] is not None for t in measured)
    assert "machine:" in done.stdout and "targets" in done.stdout


def test_bench_async_rows_compare_runasync_with_the_worker_pool():
    from juno_bridge.bench.onnx import async_rows, group_targets

    rows = async_rows(32, 1)  # checks the two sessions' async modes and that RunAsync agrees with run
    assert [r.method.split(" ")[0] for r in rows] == ["(f)", "(f')"]
    assert all(0 < r.median_us for r in rows)
    target = [t for t in group_targets(rows) if "RunAsync" in t[0]]
    assert len(target) == 1 and target[0][1] > 0
