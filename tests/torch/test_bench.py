"""The torch benchmark runs every method (a)-(e) on the tiny model and checks their numbers agree
(run_bench compares each method's output with the module's before timing). No timing is asserted."""
from helpers import torch_models as tm  # noqa: F401  (skips this file when the torch plugin is not built)

from juno_bridge.bench.torch import format_table, run_bench


def test_bench_measures_all_five_methods_side_by_side(tmp_path):
    rows = run_bench(batch_sizes=(2,), quick=True, workdir=tmp_path, groups=("tiny",))
    assert [r["method"][:3] for r in rows] == ["(a)", "(b)", "(c)", "(d)", "(e)"]
    assert [r["caller"] for r in rows] == ["python", "python", "python", "c++", "python"]
    assert all(r["group"] == "tiny" and r["batch"] == 2 and 0 < r["median_us"] <= r["p90_us"] for r in rows)
    table = format_table(rows)
    assert "(d) juno-bridge .pt2" in table and "vs best torch" in table
