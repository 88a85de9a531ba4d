"""The demo's plots and resolution figures: the bias and resolution computations on inputs with known answers,
the resolution summary and table at every energy, the panels of each plot, the integer epochs of training.png.
(The plots of a real run: tests/tools/test_demo.py.)"""
import math

import matplotlib
import matplotlib.image
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from juno_bridge.demo import resolution

matplotlib.use("Agg")


def exact(n, mean, std, seed=0):
    """``n`` values whose mean and (population) standard deviation are exactly ``mean`` and ``std``."""
    if n < 2:
        return np.full(n, float(mean))
    z = np.random.default_rng(seed).standard_normal(n)
    z = (z - z.mean()) / z.std()
    return mean + std * z


@given(n=st.integers(2, 500), mean=st.floats(-0.2, 0.2), std=st.floats(1e-4, 0.2), seed=st.integers(0, 2**16))
def test_spread_is_the_standard_deviation_and_the_mean_in_percent(n, mean, std, seed):
    s = resolution.spread(exact(n, mean, std, seed))
    assert s["events"] == n
    assert s["sigma"] == pytest.approx(100 * std, rel=1e-9)
    assert s["bias"] == pytest.approx(100 * mean, abs=1e-9)
    assert s["sigma_error"] == pytest.approx(100 * std / math.sqrt(2 * n), rel=1e-9)
    assert s["bias_error"] == pytest.approx(100 * std / math.sqrt(n), rel=1e-9)


def test_spread_of_fewer_than_two_residuals_is_nan():
    for values in ([], [0.1]):
        s = resolution.spread(values)
        assert s["events"] == len(values) and math.isnan(s["sigma"]) and math.isnan(s["bias"])


@given(per_bin=st.lists(st.tuples(st.integers(0, 40), st.floats(-0.1, 0.1), st.floats(0.001, 0.1)),
                        min_size=1, max_size=8),
       seed=st.integers(0, 2**16))
def test_binned_finds_each_bins_resolution_and_bias(per_bin, seed):
    """Events spread over each bin (the last edge included), reconstructed with a known relative bias and
    spread per bin: ``binned`` gives those back, NaN where a bin has under 2 events."""
    rng = np.random.default_rng(seed)
    edges = np.cumsum(np.r_[0.5, rng.uniform(0.2, 3.0, len(per_bin))])
    true, rec = [], []
    for k, (n, bias, sigma) in enumerate(per_bin):
        t = rng.uniform(edges[k], edges[k + 1], n)
        if n and k == len(per_bin) - 1:
            t[0] = edges[-1]          # the last bin is closed
        true.append(t)
        rec.append(t * (1 + exact(n, bias, sigma, seed + k)) if n else t)
    order = rng.permutation(sum(n for n, *_ in per_bin))
    b = resolution.binned(np.concatenate(true)[order], np.concatenate(rec)[order], edges)
    np.testing.assert_allclose(b["centre"], 0.5 * (edges[1:] + edges[:-1]))
    for k, (n, bias, sigma) in enumerate(per_bin):
        assert b["events"][k] == n
        if n < 2:
            assert math.isnan(b["sigma"][k]) and math.isnan(b["bias"][k])
        else:
            assert b["sigma"][k] == pytest.approx(100 * sigma, rel=1e-6)
            assert b["bias"][k] == pytest.approx(100 * bias, abs=1e-6)
            assert b["bias_error"][k] == pytest.approx(100 * sigma / math.sqrt(n), rel=1e-6)


def test_binned_leaves_out_energies_outside_the_edges():
    b = resolution.binned([0.2, 1.0, 1.5, 11.0], [0.3, 1.1, 1.35, 5.0], [1.0, 2.0])
    assert b["events"].tolist() == [2]
    assert b["bias"][0] == pytest.approx(0.0, abs=1e-9) and b["sigma"][0] == pytest.approx(10.0)


@pytest.mark.parametrize("args, message", [
    (([1.0, 2.0], [1.0], [0, 3]), "differ in length: 2 and 1"),
    (([1.0], [1.0], [3, 1]), "edges must be at least 2 increasing values, got [3.0, 1.0]"),
    (([1.0], [1.0], [1]), "edges must be at least 2 increasing values"),
    (([0.0, 1.0], [1.0, 1.0], [0, 3]), "true energies must be > 0 MeV"),
])
def test_binned_refuses_bad_input_clearly(args, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        resolution.binned(*args)


def test_juno_goal_is_3_percent_over_sqrt_e():
    np.testing.assert_allclose(resolution.juno_goal_percent([0.25, 1, 4, 9]), [6.0, 3.0, 1.5, 1.0])


KNOWN = {"network": (0.05, 0.001, 0.8), "baseline": (0.22, 0.004, 0.9), "floor": (None, 0.0, 0.78)}


def synthetic_residuals(n=400, energies=resolution.ENERGIES_MEV):
    """Residuals with known figures: vertex sigma vs / sqrt(E) per coordinate (m), energy bias b and sigma
    f * 3 % / sqrt(E)."""
    res = {}
    for i, e in enumerate(energies):
        r = {}
        for j, (name, (vs, b, f)) in enumerate(KNOWN.items()):
            if vs is not None:
                r[f"{name}_vertex"] = np.stack([exact(n, 0.0, vs / math.sqrt(e), 10 * i + j + c) for c in range(3)], 1)
            r[f"{name}_energy"] = exact(n, b, f * 0.03 / math.sqrt(e), 100 + 10 * i + j)
        res[e] = r
    return res


def test_summary_has_every_energy_with_standard_deviations_biases_and_the_goal():
    summary = resolution.summarize(synthetic_residuals())
    assert resolution.ENERGIES_MEV == (0.5, 1.0, 2.0, 5.0, 8.0)
    assert list(summary) == ["0.5 MeV", "1 MeV", "2 MeV", "5 MeV", "8 MeV"]
    for e, row in zip(resolution.ENERGIES_MEV, summary.values()):
        assert row["events"] == 400 and row["energy_mev"] == e
        assert row["juno_goal_percent"] == pytest.approx(3 / math.sqrt(e))
        for name, (vs, b, f) in KNOWN.items():
            r = row[name]
            assert r["energy_percent"] == pytest.approx(f * 3 / math.sqrt(e), rel=1e-9)
            assert r["energy_bias_percent"] == pytest.approx(100 * b, abs=1e-9)
            assert r["energy_bias_error_percent"] == pytest.approx(r["energy_percent"] / 20, rel=1e-9)
            if vs is not None:
                assert r["vertex_cm"] == pytest.approx(100 * vs / math.sqrt(e), rel=1e-9)
        assert row["ratio"]["energy"] == pytest.approx(0.8 / 0.9)


def test_table_has_one_row_per_energy_with_sigma_bias_and_the_goal():
    text = resolution.lines(resolution.summarize(synthetic_residuals()))
    assert "standard deviation" in text[1] and "bias: mean" in text[1]
    assert any("3%/sqrt(E)" in line and "network" in line for line in text)
    rows = [line.split() for line in text if line.split() and line.split()[0] in ("0.5", "1", "2", "5", "8")]
    assert [r[0] for r in rows] == ["0.5", "1", "2", "5", "8"]
    for r in rows:
        e = float(r[0])
        # E; vertex network, baseline, ratio; energy network, baseline, floor, ratio, goal; bias network, baseline
        assert len(r) == 11
        assert float(r[1]) == pytest.approx(5 / math.sqrt(e), abs=0.006)
        assert float(r[4]) == pytest.approx(0.8 * 3 / math.sqrt(e), abs=6e-4)
        assert float(r[6]) == pytest.approx(0.78 * 3 / math.sqrt(e), abs=6e-4)
        assert float(r[8]) == pytest.approx(3 / math.sqrt(e), abs=6e-4)
        assert (r[9], r[10]) == ("+0.100", "+0.400")


def test_resolution_plot_shows_the_curves_the_goal_and_the_bias(tmp_path):
    res = synthetic_residuals()
    fig = resolution.figure(res)
    axes = fig.get_axes()
    assert len(axes) == 6
    sigma_ax, bias_ax, vertex_ax = axes[:3]
    assert "standard deviation" in sigma_ax.get_title() and "bias" in bias_ax.get_title().lower()
    assert "standard deviation" in fig.get_suptitle()
    goal = next(line for line in sigma_ax.get_lines() if "3 % / sqrt(E)" in line.get_label())
    x, y = goal.get_data()
    np.testing.assert_allclose(y, 3 / np.sqrt(x))
    assert x.min() <= 0.5 and x.max() >= 8
    # one point per energy for network, baseline and floor; network and baseline in the bias panel
    for ax, names in ((sigma_ax, {"network", "baseline", "floor (charge at the true vertex)"}),
                      (bias_ax, {"network", "baseline"}), (vertex_ax, {"network", "baseline"})):
        handles, labels = ax.get_legend_handles_labels()
        assert names <= set(labels)
        for container in ax.containers:
            assert len(container.lines[0].get_xdata()) == 5
    network = next(c for c in bias_ax.containers if c.get_label() == "network")
    np.testing.assert_allclose(np.asarray(network.lines[0].get_ydata(), float), 0.1, atol=1e-9)
    import matplotlib.pyplot as plt
    plt.close(fig)

    png = resolution.plot(tmp_path / "r.png", res)
    image = matplotlib.image.imread(png)
    assert image.shape[:2] == (950, 1700) and np.ptp(image) > 0


@given(epochs=st.integers(1, 40))
def test_training_plot_has_integer_epochs(epochs):
    import matplotlib.pyplot as plt

    from juno_bridge.demo import train

    loss = list(np.geomspace(1.0, 0.1, epochs))
    fig = train.history_figure({"time response": {"train": loss, "validation": loss},
                                "head": {"train": loss, "validation": loss}})
    try:
        assert len(fig.get_axes()) == 2
        fig.canvas.draw()
        for ax in fig.get_axes():
            lo, hi = ax.get_xlim()
            ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
            assert ticks and all(float(t).is_integer() for t in ticks), (epochs, ticks)
    finally:
        plt.close(fig)


def test_training_plot_is_written(tmp_path):
    from juno_bridge.demo import train

    train.plot_history(tmp_path / "training.png", {"head": {"train": [1.0, 0.5], "validation": [1.1, 0.6]}})
    image = matplotlib.image.imread(tmp_path / "training.png")
    assert image.shape[:2] == (440, 605) and np.ptp(image) > 0


def test_demo_plot_shows_resolution_and_bias_per_true_energy_bin(tmp_path):
    """The energy panels are the binned resolution and bias of the demo's events, network against the
    baseline, not a scatter of reconstructed against true energy."""
    import matplotlib.pyplot as plt

    from juno_bridge.demo import comparison
    from juno_bridge.demo.toymc import generate

    events = generate(300, seed=5)
    rng = np.random.default_rng(1)
    rows = np.concatenate([events.vertex + rng.normal(0, 0.05, (300, 3)),
                           (events.energy * (1.01 + rng.normal(0, 0.02, 300)))[:, None]], axis=1)
    base = np.concatenate([events.vertex, events.energy[:, None] * 0.98], axis=1)
    results = [comparison.Result("ONNX Runtime", caller, 1000.0, 1.0, 0.0, rows) for caller in ("python", "c++")]
    fig = comparison.figure(rows, base, events, results)
    try:
        axes = fig.get_axes()
        assert len(axes) == 4
        sigma_ax, bias_ax = axes[:2]
        assert "standard deviation" in sigma_ax.get_title() and "bias" in bias_ax.get_title().lower()
        edges = comparison.ENERGY_BINS_MEV
        inside = (events.energy >= edges[0]) & (events.energy <= edges[-1])
        expected = resolution.binned(events.energy[inside], rows[inside, 3], edges)
        by_label = {c.get_label(): c.lines[0] for c in bias_ax.containers}
        assert set(by_label) == {"network (ONNX Runtime)", "baseline (centroid)"}
        np.testing.assert_allclose(np.asarray(by_label["network (ONNX Runtime)"].get_ydata(), float), expected["bias"])
        baseline_bias = np.asarray(by_label["baseline (centroid)"].get_ydata(), float)
        np.testing.assert_allclose(baseline_bias, -2.0, atol=1e-4)   # float32 energies
        sigma = {c.get_label(): c.lines[0] for c in sigma_ax.containers}
        np.testing.assert_allclose(np.asarray(sigma["network (ONNX Runtime)"].get_ydata(), float), expected["sigma"])
        np.testing.assert_allclose(np.asarray(sigma["baseline (centroid)"].get_ydata(), float), 0.0, atol=1e-4)
        assert any("3 % / sqrt(E)" in line.get_label() for line in sigma_ax.get_lines())
    finally:
        plt.close(fig)
    comparison.plot(tmp_path / "d.png", rows, events, results, base)
    image = matplotlib.image.imread(tmp_path / "d.png")
    assert image.shape[:2] == (1100, 1650) and np.ptp(image) > 0
