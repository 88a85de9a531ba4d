"""`juno-bridge train`: trains the default model (juno_bridge.demo.models.network) on toy events.

Two stages, both on per-event summaries computed once while the events are generated, so that an
epoch never touches the 17,612-PMT buffers again:

1. **time response**: the tables of time offset and weight per PMT type and nPE. The time-of-flight
   step of the graph is a weighted least-squares fit whose sums split by table entry, so each event is
   kept as 14 sums per entry (``STATISTICS``) taken at the start vertex; a batch of the fit is then a
   few small matrix products, exact and differentiable in the tables.
2. **head**: the MLP on the event's invariants, with the tables fixed.

Events come in chunks from worker processes (toy MC + the core's scatter + the fixed parts of the
graph); the training, validation and test samples use different seeds (the test seed,
``juno_bridge.demo.resolution.TEST_SEED``, is never used here).
"""
from __future__ import annotations

import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TRAINING = dict(events=100_000, epochs=12, seed=20261130, energy_mev=(0.5, 10.0))
VALIDATION = dict(events=8_000, seed=777)   # monitors training and gives the ablation; never the test seed
CHUNK = 500                                  # events per worker task (~150 MB of dense buffers at most)
STATISTICS = ("n", "u", "gx", "gy", "gz", "gux", "guy", "guz", "gxx", "gyy", "gzz", "gxy", "gxz", "gyz")
GENERIC_FEATURES = 13                        # the "network alone" inputs (see generic_features)


@dataclass
class Sample:
    """Per-event summaries of generated events (all numpy, float32 unless said)."""
    stats: np.ndarray     # [n, N_TYPES * N_PE, len(STATISTICS)]: the fit's sums by table entry, at v0
    v0: np.ndarray        # [n, 3] start vertex (m)
    charge: np.ndarray    # [n] total nPE
    hits: np.ndarray      # [n] fired PMTs
    generic: np.ndarray   # [n, GENERIC_FEATURES] summaries without the fit (ablation: network alone)
    vertex: np.ndarray    # [n, 3] truth (m)
    energy: np.ndarray    # [n] truth (MeV)

    @classmethod
    def concatenate(cls, parts: list["Sample"]) -> "Sample":
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__dataclass_fields__))

    def __len__(self) -> int:
        return len(self.energy)

    def select(self, mask) -> "Sample":
        return Sample(*(getattr(self, f)[mask] for f in self.__dataclass_fields__))


def _chunk_sample(task: tuple) -> Sample:
    """Worker: generate one chunk of events and reduce it to a Sample (torch on one thread)."""
    import torch

    from juno_bridge.demo.detector import toy_detector
    from juno_bridge.demo.models import graph, network
    from juno_bridge.demo.toymc import LIGHT_SPEED_M_PER_NS, generate

    n, seed, energy_mev, energy = task
    torch.set_num_threads(1)
    events = generate(n, seed=seed, energy_mev=energy_mev, energy=None if energy is None else np.full(n, energy))
    net = _fixed_net()
    pmt = torch.from_numpy(events.dense())
    npe, hit_time = pmt[:, 0, :], pmt[:, 1, :]
    with torch.no_grad():
        v0 = graph.start_vertex(network.TorchOps, npe, net)
        event, pmt_id = torch.nonzero(npe > 0, as_tuple=True)
        q = npe[event, pmt_id]
        diff = v0[event] - net.positions[pmt_id]           # as the graph computes it: explicit differences
        d = torch.sqrt((diff * diff).sum(dim=1) + 1e-8)
        u = hit_time[event, pmt_id] - d / LIGHT_SPEED_M_PER_NS
        g = diff / (LIGHT_SPEED_M_PER_NS * d)[:, None]
        gg = torch.stack([g[:, 0] * g[:, 0], g[:, 1] * g[:, 1], g[:, 2] * g[:, 2], g[:, 0] * g[:, 1],
                          g[:, 0] * g[:, 2], g[:, 1] * g[:, 2]], dim=1)
        pmt_type = torch.from_numpy(toy_detector().lpmt_type.astype(np.int64))[pmt_id]
        entry = pmt_type * graph.N_PE + torch.clamp(torch.round(q), 1, graph.N_PE).long() - 1   # dark PMTs: none
        groups = graph.N_TYPES * graph.N_PE
        rows = torch.cat([torch.ones_like(u)[:, None], u[:, None], g, g * u[:, None], gg], dim=1).double()
        stats = torch.zeros((n * groups, len(STATISTICS)), dtype=torch.float64)
        stats.index_add_(0, event * groups + entry, rows)
        charge = npe.sum(dim=1)
        hits = (npe > 0).sum(dim=1).to(torch.float32)
        generic = generic_features(npe, hit_time, net.positions / net.pmt_radius)
    return Sample(stats.reshape(n, groups, -1).float().numpy(), v0.numpy(), charge.numpy(), hits.numpy(),
                  generic.numpy(), events.vertex, events.energy)


def _fixed_net():
    from juno_bridge.demo.models import network

    global _NET
    if "_NET" not in globals():
        _NET = network.VertexEnergyNet().eval()
    return _NET


def generic_features(npe, hit_time, normals):
    """What a network without the fit sees: charge and hit centroids, the hit-time dipole and the time
    moments, total charge and multiplicity (the aggregated-feature networks of the JUNO literature)."""
    import torch

    hit = (npe > 0).to(npe.dtype)
    charge = npe.sum(dim=1, keepdim=True).clamp(min=1.0)
    hits = hit.sum(dim=1, keepdim=True).clamp(min=1.0)
    mean_t = (hit * hit_time).sum(dim=1, keepdim=True) / hits
    dt = hit * (hit_time - mean_t)
    spread = torch.sqrt((dt * dt).sum(dim=1, keepdim=True) / hits)
    return torch.cat([npe @ normals / charge, hit @ normals / hits, dt @ normals / hits / 10.0,
                      torch.log(charge / 1345.0), hits / charge, mean_t / 100.0, spread / 10.0], dim=1)


def generate_sample(n_events: int, seed: int, energy_mev=TRAINING["energy_mev"], energy: float | None = None,
                    processes: int | None = None, progress: bool = True, desc: str = "events") -> Sample:
    """``n_events`` toy events reduced to a Sample, in chunks over ``processes`` worker processes
    (default: the CPUs this process may use). Chunk k uses seed ``seed * 1_000_003 + k``, so the sample
    is the same whatever the number of processes."""
    from tqdm import tqdm

    tasks = [(min(CHUNK, n_events - start), seed * 1_000_003 + k, tuple(energy_mev), energy)
             for k, start in enumerate(range(0, n_events, CHUNK))]
    processes = processes or len(os.sched_getaffinity(0))
    parts = []
    with tqdm(total=n_events, unit="ev", desc=desc, disable=not progress) as bar:
        if processes == 1:
            for task in tasks:
                parts.append(_chunk_sample(task))
                bar.update(task[0])
        else:
            with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
                for part in pool.map(_chunk_sample, tasks):
                    parts.append(part)
                    bar.update(len(part))
    return Sample.concatenate(parts)


# -- stage 1: the time response --------------------------------------------------------------------------
def fit_from_statistics(stats, v0, time_offset, log_weight):
    """The graph's time-of-flight step computed from a Sample's sums: v1 [n, 3] (torch, differentiable)."""
    import torch

    from juno_bridge.demo.models import graph, network

    w = torch.exp(log_weight.reshape(-1).double())[None, :]
    off = time_offset.reshape(-1).double()[None, :]
    s = {name: stats[:, :, k].double() for k, name in enumerate(STATISTICS)}   # float64: the sums cancel
    sums = {"w": (w * s["n"]).sum(dim=1), "r": (w * (s["u"] - off * s["n"])).sum(dim=1),
            "g": torch.stack([(w * s[c]).sum(dim=1) for c in ("gx", "gy", "gz")], dim=1),
            "gr": torch.stack([(w * (s["gu" + c] - off * s["g" + c])).sum(dim=1) for c in "xyz"], dim=1),
            "gg": [(w * s[c]).sum(dim=1) for c in ("gxx", "gyy", "gzz", "gxy", "gxz", "gyz")],
            "hits": s["n"].sum(dim=1)}
    return graph.gauss_newton_step(network.TorchOps, v0.double(), sums).float()


def _batches(n: int, size: int, generator):
    import torch

    order = torch.randperm(n, generator=generator)
    return [order[i:i + size] for i in range(0, n, size)]


def train_response(train: Sample, val: Sample, epochs: int, seed: int, progress: bool = True):
    """Stage 1: returns (time_offset, log_weight) as numpy and the loss history."""
    import torch
    from tqdm import tqdm

    from juno_bridge.demo.models import graph

    generator = torch.Generator().manual_seed(seed)
    offset0, log_weight0 = graph.naive_time_response()
    offset = torch.nn.Parameter(torch.from_numpy(offset0))
    log_weight = torch.nn.Parameter(torch.from_numpy(log_weight0))
    optimizer = torch.optim.Adam([offset, log_weight], lr=0.05)
    data = {k: torch.from_numpy(getattr(s, f)) for s, k0 in ((train, "t"), (val, "v")) for f, k in
            (("stats", k0 + "s"), ("v0", k0 + "0"), ("vertex", k0 + "x"))}

    def loss_of(stats, v0, truth):
        v1 = fit_from_statistics(stats, v0, offset, log_weight)
        return torch.nn.functional.huber_loss(v1, truth, delta=0.3)   # metres; robust to the rare bad fit

    history = {"train": [], "validation": []}
    for _ in tqdm(range(epochs), desc="time response", unit="epoch", disable=not progress):
        total = 0.0
        for index in _batches(len(train), 2048, generator):
            optimizer.zero_grad()
            loss = loss_of(data["ts"][index], data["t0"][index], data["tx"][index])
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(index)
        with torch.no_grad():
            history["validation"].append(float(loss_of(data["vs"], data["v0"], data["vx"])))
        history["train"].append(total / len(train))
    return offset.detach().numpy(), log_weight.detach().numpy(), history


# -- stage 2: the head --------------------------------------------------------------------------------------
def fit_outputs(sample: Sample, net) -> tuple:
    """v1, E1 and the head's features for every event of ``sample`` with ``net``'s tables (torch)."""
    import torch

    from juno_bridge.demo.models import graph, network

    with torch.no_grad():
        v0 = torch.from_numpy(sample.v0)
        v1 = fit_from_statistics(torch.from_numpy(sample.stats), v0, net.time_offset, net.log_weight)
        light = torch.cat([net.expected_light(v1[i:i + 4096]) for i in range(0, len(sample), 4096)])
        charge, hits = torch.from_numpy(sample.charge), torch.from_numpy(sample.hits)
        energy1 = charge / (net.light_norm * light)
        features = graph.head_features(network.TorchOps, v0, v1, energy1, charge, hits)
    return v1, energy1, features


def _head_loss(vertex, energy, truth_vertex, truth_energy):
    import torch

    # in units of the resolution one expects at a few MeV (5 cm, 1.5 %), so both terms weigh alike
    dv = torch.nn.functional.huber_loss(vertex / 0.05, truth_vertex / 0.05, delta=3.0)
    de = (((energy - truth_energy) / truth_energy) / 0.015).pow(2).mean()
    return dv + de


def train_head(net, train: Sample, val: Sample, epochs: int, seed: int, progress: bool = True) -> dict:
    """Stage 2: trains ``net.head`` (and sets its feature scaling) in place; returns the loss history."""
    import torch
    from tqdm import tqdm

    from juno_bridge.demo.models import graph, network

    torch.manual_seed(seed)
    for layer in net.head:   # a fresh, seeded start whatever the module was before
        if isinstance(layer, torch.nn.Linear):
            layer.reset_parameters()
    generator = torch.Generator().manual_seed(seed + 1)
    tv1, te1, tf = fit_outputs(train, net)
    vv1, ve1, vf = fit_outputs(val, net)
    with torch.no_grad():
        net.feature_mean.copy_(tf.mean(dim=0))
        net.feature_std.copy_(tf.std(dim=0).clamp(min=1e-6))
    truth = {k: torch.from_numpy(getattr(s, f)) for s, p in ((train, "t"), (val, "v"))
             for f, k in (("vertex", p + "x"), ("energy", p + "e"))}
    optimizer = torch.optim.Adam(net.head.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))

    def loss_of(v1, e1, features, tx, te):
        out = net.head((features - net.feature_mean) / net.feature_std)
        return _head_loss(*graph.apply_head(network.TorchOps, v1, e1, out), tx, te)

    history = {"train": [], "validation": []}
    for _ in tqdm(range(epochs), desc="head", unit="epoch", disable=not progress):
        total = 0.0
        for index in _batches(len(train), 512, generator):
            optimizer.zero_grad()
            loss = loss_of(tv1[index], te1[index], tf[index], truth["tx"][index], truth["te"][index])
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(index)
        schedule.step()
        with torch.no_grad():
            history["validation"].append(float(loss_of(vv1, ve1, vf, truth["vx"], truth["ve"])))
        history["train"].append(total / len(train))
    return history


def train_alone(train: Sample, epochs: int, seed: int):
    """The ablation's "network alone": an MLP of the head's size on generic_features, no fit."""
    import torch

    from juno_bridge.demo.detector import LS_RADIUS_M
    from juno_bridge.demo.models import graph

    torch.manual_seed(seed)
    mlp = torch.nn.Sequential(torch.nn.Linear(GENERIC_FEATURES, graph.HIDDEN), torch.nn.SiLU(),
                              torch.nn.Linear(graph.HIDDEN, graph.HIDDEN), torch.nn.SiLU(),
                              torch.nn.Linear(graph.HIDDEN, 4))
    x = torch.from_numpy(train.generic)
    mean, std = x.mean(dim=0), x.std(dim=0).clamp(min=1e-6)
    tx, te = torch.from_numpy(train.vertex), torch.from_numpy(train.energy)
    optimizer = torch.optim.Adam(mlp.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    generator = torch.Generator().manual_seed(seed + 1)

    def predict(features):
        out = mlp((features - mean) / std)
        return out[:, :3] * LS_RADIUS_M, out[:, 3] * 10.0

    for _ in range(epochs):
        for index in _batches(len(train), 512, generator):
            optimizer.zero_grad()
            _head_loss(*predict(x[index]), tx[index], te[index]).backward()
            optimizer.step()
        schedule.step()
    return lambda sample: [t.detach().numpy() for t in predict(torch.from_numpy(sample.generic))]


def resolution_of(vertex, energy, sample: Sample) -> dict:
    """Vertex (cm, mean over x, y, z of the std) and energy (%, std of the relative error)."""
    dv = np.asarray(vertex) - sample.vertex
    de = (np.asarray(energy) - sample.energy) / sample.energy
    return {"vertex_cm": round(100 * float(dv.std(axis=0).mean()), 2),
            "energy_percent": round(100 * float(de.std()), 3)}


def ablation(net, train: Sample, epochs: int, seed: int, bins: dict[float, Sample]) -> dict:
    """Fixed layers alone, network alone, both, at each energy of ``bins`` (validation events)."""
    import torch

    from juno_bridge.demo.models import graph, network

    naive = network.VertexEnergyNet().eval()
    alone = train_alone(train, epochs, seed)
    out = {}
    for energy, sample in bins.items():
        v1, e1, _ = fit_outputs(sample, naive)
        rows = {"fixed layers alone": resolution_of(v1.numpy(), e1.numpy(), sample)}
        v1, e1, features = fit_outputs(sample, net)
        rows["learned time response, no head"] = resolution_of(v1.numpy(), e1.numpy(), sample)
        rows["network alone"] = resolution_of(*alone(sample), sample)
        with torch.no_grad():
            v, e = graph.apply_head(network.TorchOps, v1, e1, net.head((features - net.feature_mean) / net.feature_std))
        rows["both (the default model)"] = resolution_of(v.numpy(), e.numpy(), sample)
        out[f"{energy:g} MeV"] = rows
    return out


def history_figure(histories: dict[str, dict]):
    """The loss plot: one panel per training stage, train and validation loss per epoch (integer ticks).
    Returns the matplotlib Figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, len(histories), figsize=(5.5 * len(histories), 4), squeeze=False)
    for ax, (title, history) in zip(axes[0], histories.items()):
        for label, values in history.items():
            ax.plot(np.arange(1, len(values) + 1), values, marker="o", label=label)
        epochs = max((len(values) for values in history.values()), default=1)
        ax.set(xlabel="epoch", ylabel="loss", title=title, yscale="log", xlim=(0.5, max(epochs, 1) + 0.5))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.legend()
    fig.tight_layout()
    return fig


def plot_history(path: Path, histories: dict[str, dict]) -> None:
    """Writes ``history_figure(histories)`` to ``path`` (PNG)."""
    import matplotlib.pyplot as plt

    fig = history_figure(histories)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def train(events: int = TRAINING["events"], epochs: int = TRAINING["epochs"], seed: int = TRAINING["seed"],
          out: str | os.PathLike = "juno-bridge-train", validation_events: int = VALIDATION["events"],
          ablation_events: int = 2000, processes: int | None = None, progress: bool = True, export: bool = True,
          say=print) -> dict:
    """Trains the default model; writes ``default_weights.npz``, ``default_model.json`` (provenance,
    loss history, ablation on ``ablation_events`` validation events at 1 and 5 MeV), ``training.png``
    and, with ``export``, ``default.onnx`` into ``out``. Returns the report (the JSON)."""
    import torch

    from juno_bridge.demo.models import default, network

    if events < CHUNK or epochs < 1:
        raise ValueError(f"train needs at least {CHUNK} events and 1 epoch, got {events} and {epochs}")
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    torch.manual_seed(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train_sample = generate_sample(events, seed, processes=processes, progress=progress, desc="training events")
    val = generate_sample(validation_events, VALIDATION["seed"], processes=processes, progress=progress,
                          desc="validation events")
    bins = {e: generate_sample(ablation_events, VALIDATION["seed"] + int(10 * e), energy=e, processes=processes,
                               progress=progress, desc=f"validation at {e:g} MeV") for e in (1.0, 5.0)}
    generation_s = time.perf_counter() - t0

    t1 = time.perf_counter()
    net = network.VertexEnergyNet().eval()
    offset, log_weight, response_history = train_response(train_sample, val, epochs, seed, progress)
    with torch.no_grad():
        net.time_offset.copy_(torch.from_numpy(offset))
        net.log_weight.copy_(torch.from_numpy(log_weight))
    head_history = train_head(net, train_sample, val, epochs, seed, progress)
    training_s = time.perf_counter() - t1
    report = {"revision": default.MODEL_REVISION,
              "training": {"events": events, "epochs": epochs, "seed": seed,
                           "energy_mev": list(TRAINING["energy_mev"]), "validation": VALIDATION,
                           "generation_s": round(generation_s, 1), "training_s": round(training_s, 1),
                           "cpus": len(os.sched_getaffinity(0))},
              "history": {"time response": response_history, "head": head_history},
              "ablation (validation events)": ablation(net, train_sample, epochs, seed, bins)}
    np.savez(out / "default_weights.npz", **net.arrays())
    (out / "default_model.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_history(out / "training.png", report["history"])
    if export:
        default.export_onnx(net, out / "default.onnx")
    say(f"trained on {events} events in {training_s:.0f} s (generation {generation_s:.0f} s); wrote {out.resolve()}")
    for energy, rows in report["ablation (validation events)"].items():
        for name, r in rows.items():
            say(f"  {energy:>7}  {name:<32} vertex {r['vertex_cm']:6.2f} cm   energy {r['energy_percent']:.3f} %")
    return report
