"""How `juno-bridge bench` prints what it measured: whole labels, a ratio column that says what it
divides, microsecond targets in us, and no verdicts at --quick."""
from __future__ import annotations

from juno_bridge.bench import format_report
from juno_bridge.bench.common import Row, format_target


def rows() -> list[Row]:
    long = "(r5) triton:// 8 run_async in flight from one thread, worker pool of the client"
    return [Row("onnx", "juno", 64, "(e) onnxruntime Python API", "python", 200.0, 220.0, {}),
            Row("onnx", "juno", 64, "(a) Session.run", "python", 150.0, 160.0, {}),
            Row("remote", "juno", 64, long, "python", 900.0, 950.0, {"note": "shared memory"})]


def test_labels_are_whole_and_the_ratio_column_says_what_it_is():
    report = format_report(rows(), [])
    assert "(r5) triton:// 8 run_async in flight from one thread, worker pool of the client" in report
    header = next(line for line in report.splitlines() if line.startswith("group"))
    assert header.rstrip().endswith("time/(e)") and "vs (e)" not in report
    a = next(line for line in report.splitlines() if "(a) Session.run" in line)
    assert a.rstrip().endswith("0.75x")  # 150 us over (e)'s 200 us
    assert "time/(e): the median over that of (e)" in report


def test_a_microsecond_target_is_printed_in_us():
    line = format_target("JunoBridgeAlg in SNiPER minus Session::run alone, us per event (-65.4)", -65.41, 2.0,
                         False)
    assert ": -65.41 us (target <= 2.0 us) met" in line
    assert format_target("store handoff vs PyDataStore::set, x faster", 3000.0, 100.0, True).endswith(
        ": 3000.00x (target >= 100.0x) met")


def test_quick_runs_show_targets_without_a_verdict():
    targets = [("Session.run vs onnxruntime's Python API, x faster", 1.02, 1.3, True)]
    assert "MISSED" in format_report(rows(), targets)
    quick = format_report(rows(), targets, quick=True)
    assert "MISSED" not in quick and "met" not in quick.split("targets")[1]
    assert "1.02x (target >= 1.3x: not judged at --quick)" in quick
