"""Resolution of the default model against the baseline and the energy floor, on dedicated toy events.

Events at exactly 0.5, 1, 2, 5 and 8 MeV (``ENERGIES_MEV``), vertices uniform in the liquid scintillator,
generated from ``TEST_SEED``: a seed never used in training or in choosing the model (training:
``juno_bridge.demo.train``). Both
models run from their ONNX files through the bridge. The **energy floor** is what a perfect vertex
would give: the event's total charge over the light expected at the *true* vertex (the toy detector's
acceptance and attenuation, ``graph.expected_light``); only the Poisson fluctuation of the charge is
left in it, so it bounds what any reconstruction of these events can reach.

Vertex resolution is the standard deviation of the residual per coordinate (x, y, z; their mean is
quoted), energy resolution the standard deviation of (E_rec - E_true) / E_true and energy bias its mean,
beside the 3 % / sqrt(E) JUNO aims for. Each figure carries its statistical uncertainty: sigma / sqrt(2 n)
for a standard deviation, sigma / sqrt(n) for a mean. The chunks' seeds depend on the energy, not on
which other energies run: the events at 1 MeV are the same whatever ``energies`` holds.
"""
from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

TEST_SEED = 31_415
ENERGIES_MEV = (0.5, 1.0, 2.0, 5.0, 8.0)
JUNO_GOAL_PERCENT = 3.0   # JUNO's energy resolution goal: 3 % / sqrt(E / MeV)
CHUNK = 500


def _models():
    """This process's sessions of the default model and the baseline (opened once per process)."""
    global _SESSIONS
    if "_SESSIONS" not in globals():
        import juno_bridge as jb
        from juno_bridge.demo.models import baseline, default

        _SESSIONS = {name: jb.Session(model.onnx_model(), intra_op_threads=1)
                     for name, model in (("network", default), ("baseline", baseline))}
    return _SESSIONS


def _chunk(task: tuple) -> dict[str, np.ndarray]:
    """Worker: one chunk of events at one energy -> the residuals of both models and of the floor."""
    from juno_bridge.demo.models import graph
    from juno_bridge.demo.toymc import generate

    energy, n, seed = task
    events = generate(n, seed=seed, energy=np.full(n, energy))
    pmt = events.dense()
    out = {}
    for name, session in _models().items():
        result = session.run({"pmt": pmt})
        out[f"{name}_vertex"] = result["vertex"] - events.vertex
        out[f"{name}_energy"] = (result["energy"] - events.energy) / events.energy
    g = _numpy_geometry()
    light = graph.expected_light(graph.NumpyOps, events.vertex, g)
    floor = pmt[:, 0, :].sum(axis=1) / (g.light_norm * light)
    out["floor_energy"] = (floor - events.energy) / events.energy
    return out


@functools.lru_cache(maxsize=1)
def _numpy_geometry():
    from types import SimpleNamespace

    from juno_bridge.demo.models import graph

    return SimpleNamespace(**graph.geometry())


def residuals(n_per_energy: int = 10_000, seed: int = TEST_SEED, energies=ENERGIES_MEV,
              processes: int | None = None, progress: bool = True) -> dict[float, dict[str, np.ndarray]]:
    """Residuals of the network, the baseline and the floor at each energy, ``n_per_energy`` events each,
    in chunks over ``processes`` worker processes (the same events whatever their number)."""
    from tqdm import tqdm

    tasks = [(e, min(CHUNK, n_per_energy - start), seed * 1_000_003 + int(round(1000 * e)) * 10_000 + k)
             for e in energies for k, start in enumerate(range(0, n_per_energy, CHUNK))]
    processes = processes or len(os.sched_getaffinity(0))
    parts: dict[float, list] = {e: [] for e in energies}
    pool = (ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) if processes > 1
            else contextlib.nullcontext())
    with pool, tqdm(total=len(energies) * n_per_energy, unit="ev", desc="test events", disable=not progress) as bar:
        for task, part in zip(tasks, (pool.map if processes > 1 else map)(_chunk, tasks)):
            parts[task[0]].append(part)
            bar.update(task[1])
    return {e: {k: np.concatenate([p[k] for p in chunks]) for k in chunks[0]} for e, chunks in parts.items()}


def spread(relative) -> dict[str, float]:
    """Resolution and bias of relative residuals (E_rec - E_true) / E_true, in %: ``sigma`` their standard
    deviation, ``bias`` their mean, each with its statistical error (sigma / sqrt(2 n), sigma / sqrt(n));
    NaN where fewer than 2 residuals."""
    r = 100 * np.asarray(relative, dtype=np.float64).ravel()
    n = len(r)
    if n < 2:
        return {"events": n, "sigma": np.nan, "sigma_error": np.nan, "bias": np.nan, "bias_error": np.nan}
    sigma = float(r.std())
    return {"events": n, "sigma": sigma, "sigma_error": sigma / np.sqrt(2 * n), "bias": float(r.mean()),
            "bias_error": sigma / np.sqrt(n)}


def binned(true_energy, reconstructed, edges) -> dict[str, np.ndarray]:
    """``spread`` of (reconstructed - true) / true in each bin of true energy (``edges`` in MeV, the last bin
    closed): arrays ``centre``, ``events``, ``sigma``, ``sigma_error``, ``bias``, ``bias_error`` (%)."""
    true_energy = np.asarray(true_energy, dtype=np.float64).ravel()
    reconstructed = np.asarray(reconstructed, dtype=np.float64).ravel()
    edges = np.asarray(edges, dtype=np.float64)
    if true_energy.shape != reconstructed.shape:
        raise ValueError(f"true and reconstructed energies differ in length: {len(true_energy)} and "
                         f"{len(reconstructed)}")
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"edges must be at least 2 increasing values, got {edges.tolist()}")
    if np.any(true_energy <= 0):
        raise ValueError("true energies must be > 0 MeV (the residual is relative)")
    index = np.searchsorted(edges, true_energy, side="right") - 1
    index[true_energy == edges[-1]] = len(edges) - 2
    relative = (reconstructed - true_energy) / true_energy
    rows = [spread(relative[index == k]) for k in range(len(edges) - 1)]
    out = {key: np.array([row[key] for row in rows], dtype=np.float64) for key in rows[0]}
    out["events"] = out["events"].astype(np.int64)
    out["centre"] = 0.5 * (edges[1:] + edges[:-1])
    return out


def juno_goal_percent(energy_mev) -> np.ndarray:
    """The energy resolution JUNO aims for, 3 % / sqrt(E / MeV)."""
    return JUNO_GOAL_PERCENT / np.sqrt(np.asarray(energy_mev, dtype=np.float64))


def summarize(res: dict[float, dict[str, np.ndarray]]) -> dict[str, dict]:
    """The figures of ``residuals``: per energy, vertex (cm) and energy (%) resolution (standard deviations)
    and energy bias (mean), with their statistical errors, and JUNO's 3 % / sqrt(E) for reference."""
    out = {}
    for energy, r in res.items():
        n = len(r["floor_energy"])
        row = {"events": n, "energy_mev": float(energy), "juno_goal_percent": float(juno_goal_percent(energy))}
        for name in ("network", "baseline"):
            sigma_xyz = 100 * r[f"{name}_vertex"].std(axis=0)
            e = spread(r[f"{name}_energy"])
            row[name] = {"vertex_cm": float(sigma_xyz.mean()), "vertex_xyz_cm": [float(s) for s in sigma_xyz],
                         "vertex_error_cm": float(sigma_xyz.mean() / np.sqrt(2 * 3 * n)),
                         "energy_percent": e["sigma"], "energy_error_percent": e["sigma_error"],
                         "energy_bias_percent": e["bias"], "energy_bias_error_percent": e["bias_error"]}
        f = spread(r["floor_energy"])
        row["floor"] = {"energy_percent": f["sigma"], "energy_error_percent": f["sigma_error"],
                        "energy_bias_percent": f["bias"], "energy_bias_error_percent": f["bias_error"]}
        row["ratio"] = {"vertex": row["network"]["vertex_cm"] / row["baseline"]["vertex_cm"],
                        "energy": row["network"]["energy_percent"] / row["baseline"]["energy_percent"]}
        out[f"{energy:g} MeV"] = row
    return out


def lines(summary: dict[str, dict], seed: int = TEST_SEED) -> list[str]:
    """The table the demo prints: one row per energy."""
    n = {row["events"] for row in summary.values()}
    first = next(iter(summary.values()))
    text = [f"resolution on {'/'.join(f'{k:,}' for k in sorted(n))} toy events per energy (test seed {seed}, never "
            "used in training), vertex uniform in the LS.",
            "sigma: standard deviation (vertex: per coordinate, mean of x, y, z; energy: of (E_rec - E_true) / "
            "E_true); bias: mean of (E_rec - E_true) / E_true;",
            "floor: the charge over the light expected at the true vertex; ratio: network / baseline; "
            "3%/sqrt(E): JUNO's aim.",
            f"  {'':7}{'-- vertex sigma [cm] --':^25}{'------------- energy sigma [%] -------------':^46}"
            f"{'- energy bias [%] -':^20}",
            f"  {'E [MeV]':>7}{'network':>9}{'baseline':>9}{'ratio':>7}{'network':>10}{'baseline':>9}{'floor':>8}"
            f"{'ratio':>8}{'3%/sqrt(E)':>11}{'network':>10}{'baseline':>10}"]
    for row in summary.values():
        net, base, ratio = row["network"], row["baseline"], row["ratio"]
        text.append(f"  {row['energy_mev']:>7g}{net['vertex_cm']:>9.2f}{base['vertex_cm']:>9.2f}"
                    f"{ratio['vertex']:>6.2f}x{net['energy_percent']:>10.3f}{base['energy_percent']:>9.3f}"
                    f"{row['floor']['energy_percent']:>8.3f}"
                    f"{ratio['energy']:>7.3f}x{row['juno_goal_percent']:>11.3f}"
                    f"{net['energy_bias_percent']:>+10.3f}{base['energy_bias_percent']:>+10.3f}")
    text.append(f"  (statistical errors: each sigma ± {100 / np.sqrt(2 * first['events']):.1f} % of itself, each "
                f"bias ± sigma / sqrt(n): ± {first['network']['energy_bias_error_percent']:.3f} % for the network at "
                f"{first['energy_mev']:g} MeV)")
    return text


def figure(res: dict[float, dict[str, np.ndarray]]):
    """The resolution plot: energy resolution, energy bias and vertex resolution against the energy (network,
    baseline, floor, JUNO's 3 % / sqrt(E)); below, the energy residuals at the lowest and highest energy and
    the vertex residuals at the lowest. Returns the matplotlib Figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    summary = summarize(res)
    rows = list(summary.values())
    energy = np.array([row["energy_mev"] for row in rows])
    n = sorted({row["events"] for row in rows})
    fig, axes = plt.subplots(2, 3, figsize=(17, 9.5))
    fig.suptitle(f"Resolution on test events ({'/'.join(f'{k:,}' for k in n)} per energy, vertex uniform in the LS, "
                 f"test seed {TEST_SEED}); sigma = standard deviation, error bars: statistical")
    curve = np.geomspace(min(energy.min(), 0.5) * 0.9, max(energy.max(), 8.0) * 1.1, 100)
    # drawn in this order (the floor under the network, which nearly reaches it), side by side on the log axis
    styles = (("floor", "k", "^", 1.0), ("baseline", "C1", "s", 1.04), ("network", "C0", "o", 0.96))

    ax = axes[0, 0]
    ax.plot(curve, juno_goal_percent(curve), "--", color="C2", label="JUNO's aim: 3 % / sqrt(E)")
    for name, color, marker, shift in styles:
        ax.errorbar(energy * shift, [row[name]["energy_percent"] for row in rows],
                    [row[name]["energy_error_percent"] for row in rows], color=color, marker=marker, capsize=3,
                    ls=":" if name == "floor" else "-",
                    label="floor (charge at the true vertex)" if name == "floor" else name)
    ax.set(xscale="log", xlabel="true energy [MeV]", ylabel="sigma of (E_rec - E_true) / E_true [%]",
           title="Energy resolution (standard deviation)")
    ax = axes[0, 1]
    ax.axhline(0, color="grey", lw=0.8)
    for name, color, marker, shift in styles[1:]:
        ax.errorbar(energy * shift, [row[name]["energy_bias_percent"] for row in rows],
                    [row[name]["energy_bias_error_percent"] for row in rows], color=color, marker=marker,
                    capsize=3, label=name)
    ax.set(xscale="log", xlabel="true energy [MeV]", ylabel="mean of (E_rec - E_true) / E_true [%]",
           title="Energy bias (mean)")
    ax = axes[0, 2]
    for name, color, marker, _ in styles[1:]:
        ax.errorbar(energy, [row[name]["vertex_cm"] for row in rows], [row[name]["vertex_error_cm"] for row in rows],
                    color=color, marker=marker, capsize=3, label=name)
    ax.set(xscale="log", ylim=(0, None), xlabel="true energy [MeV]", ylabel="sigma per coordinate [cm]",
           title="Vertex resolution (standard deviation, mean of x, y, z)")
    for ax in axes[0]:
        ax.set_xticks(energy, [f"{e:g}" for e in energy])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)

    low, high = min(res), max(res)
    for ax, e in zip(axes[1, :2], (low, high)):
        r = res[e]
        span = 4 * 100 * r["baseline_energy"].std()
        for name, color, *_ in styles:
            s = spread(r[f"{name}_energy"])
            ax.hist(100 * r[f"{name}_energy"], bins=60, range=(-span, span), histtype="step", color=color,
                    label=f"{name}: sigma {s['sigma']:.2f} %, bias {s['bias']:+.2f} %")
        ax.set(xlabel="(E_rec - E_true) / E_true [%]", ylabel="events", title=f"Energy residuals at {e:g} MeV")
        ax.set_ylim(top=1.3 * ax.get_ylim()[1])   # room for the legend
        ax.legend(fontsize=9)
    ax = axes[1, 2]
    r = res[low]
    span = 4 * 100 * r["baseline_vertex"].std()
    for name, color, *_ in styles[1:]:
        values = 100 * r[f"{name}_vertex"].ravel()
        ax.hist(values, bins=80, range=(-span, span), histtype="step", color=color,
                label=f"{name}: sigma {values.std():.1f} cm")
    ax.set(xlabel="reconstructed - true vertex (x, y, z pooled) [cm]", ylabel="coordinates",
           title=f"Vertex residuals at {low:g} MeV")
    ax.set_ylim(top=1.15 * ax.get_ylim()[1])
    ax.legend(fontsize=9)
    fig.tight_layout()
    return fig


def plot(path: str | os.PathLike, res: dict[float, dict[str, np.ndarray]]) -> Path:
    """Writes ``figure(res)`` to ``path`` (PNG)."""
    import matplotlib.pyplot as plt

    fig = figure(res)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
