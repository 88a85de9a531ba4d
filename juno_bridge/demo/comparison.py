"""`juno-bridge demo`: every method (ONNX Runtime, libtorch, TensorFlow, the Python algorithm) compared
on toy JUNO events, from Python and from C++.

Generates events (sparse LPMT hits), runs the default model (a network trained on toy events,
juno_bridge.demo.models.default) through every method that is built (ONNX Runtime, libtorch
AOTInductor and TorchScript, TensorFlow, Python algorithm), each from a Python event loop and from a
compiled C++ "offline framework" host, all with the same per-event batching (jb.BatchAssembler), and
reports speed, agreement with the torch module, the cost of the network against the centroid baseline,
the resolution on dedicated test events (juno_bridge.demo.resolution), plots, and which method to use.
"""
from __future__ import annotations

import importlib.util
import json
import os
import struct
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import juno_bridge as jb
from juno_bridge.demo.detector import N_LPMT
from juno_bridge.demo import resolution
from juno_bridge.demo.models import baseline, default, default_algorithm
from juno_bridge.demo.toymc import Events, generate

BATCH = 64


BASELINE = "baseline: centroid (ONNX Runtime)"


@dataclass
class Method:
    name: str            # "ONNX Runtime", "libtorch (.pt2)", ...
    model: str           # what Session opens
    native: object       # callable(dense [B, 2, N]) -> [B, 4] without the bridge, for the overhead column
    note: str = ""
    reference: bool = True   # runs the default model, so its outputs are compared with the torch module


@dataclass
class Result:
    method: str
    caller: str
    events_per_s: float
    overhead_us: float | None
    max_deviation: float | None   # None for the baseline (another model)
    outputs: np.ndarray = field(repr=False)


def write_events_file(events: Events, path: Path) -> None:
    """The framework host's input: the hits exactly as generated (see cpp/tools/framework_host.cpp)."""
    with open(path, "wb") as f:
        f.write(b"JBHITS01" + struct.pack("<QQ", len(events), len(events.pmt_id)))
        for array, dtype in ((events.offsets, np.int64), (events.pmt_id, np.int32), (events.npe, np.float32),
                             (events.time, np.float32)):
            f.write(np.ascontiguousarray(array, dtype=dtype).tobytes())


def dense_batches(events: Events, batch: int = BATCH):
    """[b, 2, N] dense batches through the core's scatter, for the reference and the native calls."""
    buffer = np.zeros((batch, 2, N_LPMT), np.float32)
    for start in range(0, len(events), batch):
        stop = min(start + batch, len(events))
        yield start, stop, events.dense(start, stop, out=buffer[: stop - start])


def as_rows(outputs: dict) -> np.ndarray:
    return np.concatenate([outputs["vertex"], outputs["energy"][:, None]], axis=1)


def python_loop(model: str, events: Events) -> tuple[float, np.ndarray]:
    """The Python caller: per-event hits into a BatchAssembler, batched runs, rows back per event."""
    session = jb.Session(model, intra_op_threads=1)
    assembler = jb.BatchAssembler(session, BATCH)
    rows = np.empty((len(events), 4), np.float32)

    def collect(done):
        for event_id, outputs in done:
            rows[event_id, :3] = outputs["vertex"]
            rows[event_id, 3] = outputs["energy"]

    t0 = time.perf_counter()
    for i in range(len(events)):
        collect(assembler.add(*events.hits(i)))
    collect(assembler.flush())
    elapsed = time.perf_counter() - t0
    session.close()
    return elapsed, rows


def cpp_loop(host: Path, model: str, events_file: Path, results_file: Path, n: int) -> tuple[float, np.ndarray]:
    done = subprocess.run([str(host), model, str(events_file), str(results_file), str(BATCH), "1"],
                          capture_output=True, text=True, timeout=1800, env=_host_env())
    if done.returncode != 0:
        raise jb.RunError(f"framework host failed on {model}: {done.stderr.strip()}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    # each event's rows in the session's output order (TensorFlow sorts its outputs by name)
    raw = np.fromfile(results_file, np.float32).reshape(n, 4)
    columns, start = {}, 0
    for name in report["outputs"]:
        width = 3 if name == "vertex" else 1
        columns[name], start = raw[:, start:start + width], start + width
    return report["seconds"], np.concatenate([columns["vertex"], columns["energy"]], axis=1)


def _host_env() -> dict:
    # As a batch job runs it: no preloads, one OpenMP thread (the torch module of the python: form would
    # otherwise spin threads on every core beside the job's own); PYTHONPATH kept so python: models import.
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "LD_PRELOAD")}
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def native_time(native, events: Events) -> float:
    """Seconds to turn the hits into the same dense batches and run the same model file through its own
    library's Python API: the baseline the bridge's overhead is measured against."""
    t0 = time.perf_counter()
    for _, _, dense in dense_batches(events):
        native(dense)
    return time.perf_counter() - t0


def _ort_native(path: str):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"pmt": x})


def available_methods(cache: Path, say) -> list[Method]:
    onnx_path = str(default.onnx_model())
    methods = [Method("ONNX Runtime", onnx_path, _ort_native(onnx_path))]
    try:
        pt2, pt, _ = default.torch_models(cache)
        import torch

        torch.set_num_threads(1)   # every method on one thread, torch's own calls and the python: form too

        def native(model):
            def call(x):
                with torch.inference_mode():
                    return model(torch.from_numpy(x))
            return call

        methods.append(Method("libtorch AOTInductor (.pt2)", str(pt2),
                              native(torch._inductor.aoti_load_package(str(pt2)))))
        methods.append(Method("libtorch TorchScript (.pt)", str(pt), native(torch.jit.load(str(pt)))))
    except jb.BackendUnavailableError as err:
        say(f"  libtorch: not available ({err})")
    try:
        methods.append(_tensorflow_method(cache))
    except jb.BackendUnavailableError as err:
        say(f"  TensorFlow: not available ({err})")
    if importlib.util.find_spec("torch"):
        methods.append(Method("Python algorithm (torch)", default_algorithm.MODEL, default.reconstruct))
    else:
        say("  Python algorithm: not available (it calls the torch module; torch is not installed)")
    centroid = str(baseline.onnx_model())
    methods.append(Method(BASELINE, centroid, _ort_native(centroid), reference=False))
    return methods


def _tensorflow_method(cache: Path) -> Method:
    """The same network in Keras, as a SavedModel through the TensorFlow plugin."""
    from juno_bridge import paths

    if "tf" not in paths.plugins():
        raise jb.BackendUnavailableError("the TensorFlow plugin was not built")
    # TensorFlow's INFO lines (here and in the C++ host, which inherits the environment) would bury the table
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf

        from juno_bridge.demo.models import keras_port
    except ImportError as err:
        raise jb.BackendUnavailableError(f"TensorFlow is not installed ({err})") from err
    try:   # one thread, as every other method (possible only before TensorFlow's first op)
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass
    saved = keras_port.saved_model(cache)
    serving = tf.saved_model.load(str(saved)).signatures["serving_default"]
    return Method("TensorFlow SavedModel (Keras)", str(saved), lambda x: serving(pmt=tf.constant(x)))


# the demo plot's true-energy bins: the model's range, 0.5-10 MeV (the few events below are left out)
ENERGY_BINS_MEV = np.array([0.5, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])


def figure(rows: np.ndarray, baseline_rows: np.ndarray | None, events: Events, results: list[Result]):
    """The demo plot: energy resolution and bias per true-energy bin of the demo's events (network through ONNX
    Runtime, ``rows`` [N, 4]; the centroid baseline, ``baseline_rows``, if given), the vertex residuals and the
    speed of each method. Returns the matplotlib Figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(15, 10))
    curves = [("network (ONNX Runtime)", rows, "C0", "o", -0.08)]   # side by side: shifted by 0.08 MeV
    if baseline_rows is not None:
        curves.append(("baseline (centroid)", baseline_rows, "C1", "s", 0.08))
    true = np.asarray(events.energy)
    edges = ENERGY_BINS_MEV
    inside = (true >= edges[0]) & (true <= edges[-1])
    per_bin = np.count_nonzero(inside) / (edges[-1] - edges[0])
    for name, r, color, marker, shift in curves:
        b = resolution.binned(true[inside], r[inside, 3], edges)
        for ax, key in ((axes[0, 0], "sigma"), (axes[0, 1], "bias")):
            ax.errorbar(b["centre"] + shift, b[key], b[f"{key}_error"], xerr=0.5 * np.diff(edges), color=color,
                        marker=marker, ls="none", capsize=3, label=name)
    curve = np.linspace(0.4, edges[-1], 200)
    axes[0, 0].plot(curve, resolution.juno_goal_percent(curve), "--", color="C2", label="JUNO's aim: 3 % / sqrt(E)")
    axes[0, 0].set(xlabel="true energy [MeV]", ylabel="sigma of (E_rec - E_true) / E_true [%]", ylim=(0, None),
                   title=f"Energy resolution (standard deviation), ~{per_bin:.0f} events per MeV")
    axes[0, 1].axhline(0, color="grey", lw=0.8)
    axes[0, 1].set(xlabel="true energy [MeV]", ylabel="mean of (E_rec - E_true) / E_true [%]",
                   title="Energy bias (mean) per true-energy bin")
    for ax in axes[0]:
        ax.set_xlim(0, edges[-1])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
    ax = axes[1, 0]
    for k, axis in enumerate("xyz"):
        ax.hist(100 * (rows[:, k] - events.vertex[:, k]), bins=120, range=(-30, 30), histtype="step", label=axis)
    ax.set(xlabel="reconstructed - true vertex [cm]", ylabel="events",
           title="Vertex residuals, network (ONNX Runtime), 0-10 MeV")
    ax.legend(fontsize=9)
    ax = axes[1, 1]
    labels = [f"{r.method}\n({r.caller})" for r in results]
    ax.barh(labels, [r.events_per_s for r in results], color=["C0" if r.caller == "python" else "C1" for r in results])
    ax.invert_yaxis()
    ax.set(xlabel="events / s (batches of 64, 1 thread; blue: from Python, orange: from C++)",
           title="Speed of each method")
    ax.tick_params(axis="y", labelsize=8)
    fig.suptitle(f"juno-bridge demo: {len(events):,} toy events, 0-10 MeV, vertex uniform in the LS")
    fig.tight_layout()
    return fig


def plot(path: Path, rows: np.ndarray, events: Events, results: list[Result],
         baseline_rows: np.ndarray | None = None) -> None:
    """Writes ``figure(...)`` to ``path`` (PNG)."""
    import matplotlib.pyplot as plt

    fig = figure(rows, baseline_rows, events, results)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def recommendation(results: list[Result]) -> list[str]:
    by = {(r.method, r.caller): r for r in results}
    onnx = by.get(("ONNX Runtime", "c++"))
    fastest = max((r for r in results if r.method != BASELINE), key=lambda r: r.events_per_s)
    lines = [f"Fastest here: {fastest.method} from {fastest.caller} ({fastest.events_per_s:,.0f} events/s)."]
    if onnx:
        lines.append(f"Default: ONNX Runtime ({onnx.events_per_s:,.0f} events/s from C++): one file, no Python or "
                     "libtorch in the job, any ONNX Runtime 1.16+ release.")
    torch_rows = [r for r in results if r.method.startswith("libtorch") and r.caller == "c++"]
    if torch_rows:
        best = max(torch_rows, key=lambda r: r.events_per_s)
        lines.append(f"libtorch: when a model does not export to ONNX; {best.method} ran at "
                     f"{best.events_per_s:,.0f} events/s from C++ (the .pt2 is tied to the CPU it was compiled on).")
    tf_row = by.get(("TensorFlow SavedModel (Keras)", "c++"))
    if tf_row:
        lines.append(f"TensorFlow: for a Keras model that is not exported to ONNX; {tf_row.events_per_s:,.0f} events/s "
                     "from C++ through TensorFlow's C API (any release from 2.16 on, found at run time).")
    py = by.get(("Python algorithm (torch)", "c++"))
    if py:
        overhead = f", {py.overhead_us:+.0f} us/event against calling it directly" if py.overhead_us is not None else ""
        lines.append(f"Python algorithm: for prototypes and libraries with no C++ API; {py.events_per_s:,.0f} "
                     f"events/s from C++{overhead}, serialised by the GIL.")
    return lines


def reference_outputs(events: Events) -> np.ndarray:
    """[N, 4] outputs of the default model in torch (its ONNX file through onnxruntime without torch)."""
    try:
        import torch  # noqa: F401
        call = default.reconstruct
    except ImportError:
        call = _ort_native(str(default.onnx_model()))
    rows = np.empty((len(events), 4), np.float32)
    for start, stop, dense in dense_batches(events):
        v, e = call(dense)
        rows[start:stop, :3], rows[start:stop, 3] = v, e
    return rows


def network_cost(results: list[Result]) -> str | None:
    """The network's cost per event against the centroid's, both through ONNX Runtime from C++ (else Python)."""
    by = {(r.method, r.caller): r for r in results}
    for caller in ("c++", "python"):
        net, centroid = by.get(("ONNX Runtime", caller)), by.get((BASELINE, caller))
        if net and centroid:
            extra = 1e6 / net.events_per_s - 1e6 / centroid.events_per_s
            return (f"the network costs {1e6 / net.events_per_s:.0f} us/event against the centroid's "
                    f"{1e6 / centroid.events_per_s:.0f} us/event ({extra:+.0f} us, "
                    f"{centroid.events_per_s / net.events_per_s:.1f}x; ONNX Runtime from {caller}, 1 thread, "
                    f"batch {BATCH})")
    return None


def run_demo(n_events: int = 2000, out_dir: str | os.PathLike = "juno-bridge-demo", seed: int = 1,
             progress: bool = True, say=print, resolution_events: int = 2000) -> dict:
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    say(f"juno-bridge demo: {n_events} toy JUNO events (LPMT hits, 0-10 MeV, vertex uniform in the LS)")
    chunks = []
    with tqdm(total=n_events, unit="ev", desc="generating", disable=not progress) as bar:
        for start in range(0, n_events, 250):
            k = min(250, n_events - start)
            chunks.append(generate(k, seed=seed * 100003 + start))
            bar.update(k)
    events = Events.concatenate(chunks)
    events_file = out / "events.jbhits"  # the C++ host's input (216 MB at 2,000 events): removed at the end
    write_events_file(events, events_file)
    try:
        return _compare(events, events_file, out, n_events, progress, say, resolution_events)
    finally:
        events_file.unlink(missing_ok=True)


def _compare(events, events_file: Path, out: Path, n_events: int, progress: bool, say, resolution_events: int) -> dict:
    from tqdm import tqdm

    from juno_bridge import paths
    from juno_bridge.paths import cache_dir

    say("methods (models generated into the cache on first use: " + str(cache_dir()) + "):")
    methods = available_methods(cache_dir(), say)
    reference = reference_outputs(events)

    host = Path(paths.bin_dir()) / "jb-framework-host"
    results: list[Result] = []
    for m in tqdm(methods, desc="running", unit="method", disable=not progress):
        native = native_time(m.native, events)
        runs = [("python", lambda: python_loop(m.model, events))]
        if host.exists():
            runs.append(("c++", lambda: cpp_loop(host, m.model, events_file, out / "results.f32", n_events)))
        for caller, run in runs:
            seconds, rows = run()
            deviation = float(np.abs(rows - reference).max()) if m.reference else None
            results.append(Result(m.name, caller, n_events / seconds, 1e6 * (seconds - native) / n_events,
                                  deviation, rows))
    if not host.exists():
        say(f"  C++ host: not built ({host} missing)")

    onnx_rows = next(r.outputs for r in results if r.method == "ONNX Runtime")
    baseline_rows = next((r.outputs for r in results if r.method == BASELINE), None)
    png = out / "juno-bridge-demo.png"
    plot(png, onnx_rows, events, results, baseline_rows)
    res = resolution.residuals(resolution_events, progress=progress)
    res_png = resolution.plot(out / "juno-bridge-resolution.png", res)
    res_summary = resolution.summarize(res)

    say("")
    say(f"{'method':<34}{'caller':<8}{'events/s':>10}{'vs native us/ev':>17}{'max |dev|':>12}")
    for r in results:
        dev = "-" if r.max_deviation is None else f"{r.max_deviation:.2e}"
        say(f"{r.method:<34}{r.caller:<8}{r.events_per_s:>10,.0f}{r.overhead_us:>+17.1f}{dev:>12}")
    say("(vs native: the bridge's overhead per event against turning the hits into the same dense batches and "
        "calling the same model file through its own library from Python -- onnxruntime, torch's AOTInductor "
        "loader, torch.jit, TensorFlow's SavedModel signature, the plain function; negative means the bridge is "
        "faster. max |dev|: against the torch module, metres and MeV)")
    cost = network_cost(results)
    if cost:
        say(cost[0].upper() + cost[1:] + ".")
    say("")
    for line in resolution.lines(res_summary):
        say(line)
    say(f"plots: {png.resolve()}, {res_png.resolve()}")
    say("")
    say("Which method to use:")
    for line in recommendation(results):
        say(f"  - {line}")
    summary = {"events": n_events, "png": str(png), "resolution": res_summary, "network_cost": cost,
               "results": [{k: v for k, v in r.__dict__.items() if k != "outputs"} for r in results]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
