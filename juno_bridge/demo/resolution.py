"""Resolution of the default model against the baseline and the energy floor, on dedicated toy events.

Events at exactly 1 and 5 MeV, vertices uniform in the liquid scintillator, generated from ``TEST_SEED``:
a seed never used in training or in choosing the model (training: ``juno_bridge.demo.train``). Both
models run from their ONNX files through the bridge. The **energy floor** is what a perfect vertex
would give: the event's total charge over the light expected at the *true* vertex (the toy detector's
acceptance and attenuation, ``graph.expected_light``); only the Poisson fluctuation of the charge is
left in it, so it bounds what any reconstruction of these events can reach.

Vertex resolution is the standard deviation of the residual per coordinate (x, y, z; their mean is
quoted), energy resolution the standard deviation of (E_rec - E_true) / E_true. Each figure carries
its statistical uncertainty, sigma / sqrt(2 n).
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
ENERGIES_MEV = (1.0, 5.0)
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


def residuals(n_per_energy: int = 10_000, seed: int = TEST_SEED, energies=ENERGIES_MEV, processes: int | None = None,
              progress: bool = True) -> dict[float, dict[str, np.ndarray]]:
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


def summarize(res: dict[float, dict[str, np.ndarray]]) -> dict[str, dict]:
    """The figures of ``residuals``: per energy, vertex (cm) and energy (%) resolution with errors."""
    out = {}
    for energy, r in res.items():
        n = len(r["floor_energy"])
        row = {"events": n}
        for name in ("network", "baseline"):
            sigma_xyz = 100 * r[f"{name}_vertex"].std(axis=0)
            sigma_e = 100 * r[f"{name}_energy"].std()
            row[name] = {"vertex_cm": float(sigma_xyz.mean()), "vertex_xyz_cm": [float(s) for s in sigma_xyz],
                         "vertex_error_cm": float(sigma_xyz.mean() / np.sqrt(2 * 3 * n)),
                         "energy_percent": float(sigma_e), "energy_error_percent": float(sigma_e / np.sqrt(2 * n)),
                         "energy_bias_percent": float(100 * r[f"{name}_energy"].mean())}
        sigma_floor = 100 * r["floor_energy"].std()
        row["floor"] = {"energy_percent": float(sigma_floor),
                        "energy_error_percent": float(sigma_floor / np.sqrt(2 * n))}
        row["ratio"] = {"vertex": row["network"]["vertex_cm"] / row["baseline"]["vertex_cm"],
                        "energy": row["network"]["energy_percent"] / row["baseline"]["energy_percent"]}
        out[f"{energy:g} MeV"] = row
    return out


def lines(summary: dict[str, dict], seed: int = TEST_SEED) -> list[str]:
    """The table the demo prints."""
    n = {row["events"] for row in summary.values()}
    text = [f"resolution on {'/'.join(str(k) for k in sorted(n))} toy events per energy (test seed {seed}, never "
            "used in training), vertex uniform in the LS:",
            f"  {'':8}{'model':<10}{'vertex x / y / z [cm]':>26}{'mean [cm]':>14}{'energy [%]':>15}"]
    for label, row in summary.items():
        for name in ("network", "baseline"):
            r = row[name]
            xyz = " / ".join(f"{s:5.2f}" for s in r["vertex_xyz_cm"])
            text.append(f"  {label if name == 'network' else '':8}{name:<10}{xyz:>26}"
                        f"{r['vertex_cm']:>8.2f} ± {r['vertex_error_cm']:.2f}"
                        f"{r['energy_percent']:>9.3f} ± {r['energy_error_percent']:.3f}")
        f = row["floor"]
        text.append(f"  {'':8}{'floor':<10}{'(charge at the true vertex)':>26}{'':>14}"
                    f"{f['energy_percent']:>9.3f} ± {f['energy_error_percent']:.3f}")
        ratio = row["ratio"]
        text.append(f"  {'':8}network / baseline: vertex {ratio['vertex']:.2f}x, energy {ratio['energy']:.3f}x")
    return text


def plot(path: str | os.PathLike, res: dict[float, dict[str, np.ndarray]]) -> Path:
    """Residual distributions, network against baseline (and the floor for energy), per energy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(res), figsize=(6 * len(res), 8), squeeze=False)
    for col, (energy, r) in enumerate(res.items()):
        ax = axes[0, col]
        span = 5 * 100 * r["baseline_vertex"].std()
        for name, style in (("baseline", "C1"), ("network", "C0")):
            values = 100 * r[f"{name}_vertex"].ravel()
            ax.hist(values, bins=120, range=(-span, span), histtype="step", color=style,
                    label=f"{name}: {values.std():.1f} cm")
        ax.set(xlabel="reconstructed - true vertex (x, y, z pooled) [cm]", ylabel="coordinates",
               title=f"Vertex at {energy:g} MeV ({len(r['floor_energy'])} events)")
        ax.legend()
        ax = axes[1, col]
        span = 5 * 100 * r["baseline_energy"].std()
        for name, key, style in (("baseline", "baseline_energy", "C1"), ("network", "network_energy", "C0"),
                                 ("floor (true vertex)", "floor_energy", "k")):
            values = 100 * r[key]
            ax.hist(values, bins=120, range=(-span, span), histtype="step", color=style,
                    label=f"{name}: {values.std():.2f} %")
        ax.set(xlabel="(E_rec - E_true) / E_true [%]", ylabel="events", title=f"Energy at {energy:g} MeV")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
