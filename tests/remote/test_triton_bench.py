"""`juno-bridge bench --only remote`: a Triton server on loopback, run_async vs threads, shared-session memory,
Dask workers; every row measured and every target line printed (numbers not asserted)."""
import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.triton, pytest.mark.dask]


def test_remote_group_has_the_run_async_and_shared_session_rows(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "-m", "juno_bridge.cli", "bench", "--only", "remote", "--quick",
                           "--json", str(out)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    rows = {(r["group"], r["batch"], r["method"][:4]): r for r in report["rows"]}
    for key in [("remote", 64, "(r4)"), ("remote", 64, "(r5)"), ("shared-open", 0, "(m1)"),
                ("shared-open", 0, "(m2)")]:
        assert key in rows, f"no row {key} in {sorted(rows)}"
        assert 0 < rows[key]["median_us"] <= rows[key]["p90_us"], rows[key]
    assert "run_async" in rows[("remote", 64, "(r5)")]["method"]
    shared, separate = rows[("shared-open", 0, "(m1)")]["extra"], rows[("shared-open", 0, "(m2)")]["extra"]
    assert "1 backend session(s)" in shared["note"] and "10 backend session(s)" in separate["note"]
    assert shared["rss_mb"] > 0 and separate["rss_mb"] > 0
    measured = {t["text"]: t["ratio"] for t in report["targets"]}
    for text in ("remote juno B=64: throughput of 8 run_async", "shared sessions: RSS growth of 10 opens"):
        assert any(k.startswith(text) and v is not None for k, v in measured.items()), measured
    assert "(r5)" in done.stdout and "shared sessions: RSS growth" in done.stdout
