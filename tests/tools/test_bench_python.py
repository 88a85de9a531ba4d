"""The python-method benchmark runs end to end and reports every row it promises (no timing asserted)."""
import math

from juno_bridge.bench.python import format_table, numpy_scatter, one_mev_event, run_bench

import numpy as np

import juno_bridge as jb


def test_quick_bench_reports_all_methods_with_finite_times():
    rows = run_bench(quick=True)
    methods = [r["method"] for r in rows]
    for label in ("(a) JUNO-style", "(b) juno-bridge", "(c) the callable", "scatter_hits", "numpy add.at"):
        assert any(m.startswith(label) or label in m for m in methods), (label, methods)
    for r in rows:
        assert set(r) == {"group", "method", "caller", "median_us", "p90_us", "note"}
        assert math.isfinite(r["median_us"]) and 0 < r["median_us"] <= r["p90_us"]
    assert "faster than" in format_table(rows)


def test_the_numpy_reference_of_the_bench_agrees_with_scatter_hits():
    ids, npe, t = one_mev_event(np.random.default_rng(5))
    assert len(ids) == 1500 and len(np.unique(ids)) < len(ids)  # several hits on some PMTs
    ours = jb.scatter_hits(ids, npe, t)
    np.testing.assert_allclose(ours, numpy_scatter(ids, npe, t, np.empty_like(ours)), rtol=1e-5)
