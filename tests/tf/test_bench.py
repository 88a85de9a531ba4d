"""The tf benchmark group: its rows measure what they claim, and its targets read the right rows."""
import numpy as np

from helpers import tf_models  # noqa: F401 - skips this module where tensorflow or the tf plugin is absent

from juno_bridge import bench
from juno_bridge.bench import tf as bench_tf
from juno_bridge.cli import build_parser


def test_quick_run_measures_all_four_paths_on_the_same_saved_model(tmp_path):
    rows = bench_tf.run_bench(quick=True, batch_sizes=(1,), models=("tiny",), workdir=tmp_path)
    assert [r["method"][:3] for r in rows] == ["(a)", "(b)", "(c)", "(d)"]
    assert {(r["group"], r["model"], r["batch"]) for r in rows} == {("tf", "tiny", 1)}
    assert [r["caller"] for r in rows] == ["python", "python", "python", "c++"]
    for r in rows:
        assert 0 < r["median_us"] <= r["p90_us"], r
    assert (tmp_path / "tiny.savedmodel" / "saved_model.pb").exists()
    table = bench_tf.format_table(rows)
    assert "tf tiny B=1: (a)/(c)" in table and "vs best TF" in table


def _row(model, batch, key, median):
    return {"group": "tf", "model": model, "batch": batch, "method": bench_tf.METHODS[key],
            "caller": "python", "median_us": median, "p90_us": median}


def test_targets_compare_with_the_issues_rows():
    rows = [_row("tiny", 64, "a", 300.0), _row("tiny", 64, "b", 600.0), _row("tiny", 64, "c", 10.0),
            _row("tiny", 64, "d", 9.0), _row("juno", 64, "a", 1000.0), _row("juno", 64, "b", 900.0),
            _row("juno", 64, "c", 990.0)]
    got = {text: (value, target, higher) for text, value, target, higher in bench_tf.targets(rows)}
    assert got["tf tiny B=64: (a)/(c), juno-bridge Python vs TF Python signature"] == (30.0, 20.0, True)
    np.testing.assert_allclose(got["tf juno B=64: (c) vs the fastest TensorFlow path"][0], 1.1)
    assert got["tf tiny B=64: (d) vs the fastest TensorFlow path"] == (0.03, 1.05, False)
    assert "tf juno B=64: (d) vs the fastest TensorFlow path" not in got  # not measured, not invented


def test_tf_is_a_bench_group_of_the_cli():
    assert "tf" in bench.GROUPS
    assert build_parser().parse_args(["bench", "--only", "tf"]).only == ["tf"]
