"""The trained default model (juno_bridge.demo.models.default) in every form that is built, each through

    (1) its own library's Python API on the same file (the reference the bridge is measured against):
        .onnx       onnxruntime InferenceSession.run
        .pt2        torch._inductor.aoti_load_package
        .pt         torch.jit.load
        SavedModel  tf.saved_model.load, serving signature
        python:     the plain torch module (default.reconstruct)
    (2) juno-bridge Session.run(out=) from Python
    (3) juno-bridge from a compiled C++ loop (jb-bench-loop)

and the centroid baseline (.onnx) through ONNX Runtime from Python and C++, the yardstick of the
network's cost. Toy events (juno_bridge.demo.toymc) as input, 64-byte aligned; one intra-op thread.
Each row notes events/s (batch / median); the targets print the bridge's overhead per event against
(1) and the network's cost per event against the centroid's. Forms that are not built are skipped
with the reason. The models come from the cache (juno_bridge.paths.cache_dir), exported on first use.
"""
from __future__ import annotations

import importlib.util
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

import juno_bridge as jb
from juno_bridge import paths
from juno_bridge.bench.common import Measure, Row, Settings, Target, find_row, run_loop_binary, side_by_side, time_calls

NETWORK, CENTROID = "net", "cent"
CALLERS = {"native": "(1)", "bridge": "(2) juno-bridge Session.run(out=)", "loop": "(3) juno-bridge C++ loop"}


@dataclass
class Form:
    model: str                                  # NETWORK or CENTROID
    name: str                                   # ".onnx", ".pt2", ".pt", "SavedModel", "python:"
    path: str                                   # what jb.Session and jb-bench-loop open
    api: str                                    # the library's own Python API, for the method label
    native: Callable[[np.ndarray], object]      # that API: pmt [B, 2, 17612] -> outputs
    env: dict | None = None                     # extra environment of the C++ loop


def _ort(path: str) -> Callable:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"pmt": x})


def _torch_call(model) -> Callable:
    import torch

    def call(x):
        with torch.inference_mode():
            return [t.numpy() for t in model(torch.from_numpy(x))]
    return call


def forms(cache: Path, say=print) -> list[Form]:
    """Every form of the default model that is built here, then the centroid; says why one is missing."""
    from juno_bridge.demo.models import baseline, default, default_algorithm

    onnx = str(default.onnx_model())
    found = [Form(NETWORK, ".onnx", onnx, "onnxruntime InferenceSession.run", _ort(onnx))]
    try:
        pt2, pt, _ = default.torch_models(cache)
        import torch

        torch.set_num_threads(1)  # process-wide: the bridge's torch sessions run under it too
        found.append(Form(NETWORK, ".pt2", str(pt2), "torch aoti_load_package",
                          _torch_call(torch._inductor.aoti_load_package(str(pt2)))))
        found.append(Form(NETWORK, ".pt", str(pt), "torch.jit.load", _torch_call(torch.jit.load(str(pt)))))
    except jb.BackendUnavailableError as err:
        say(f"  model: no .pt2 or .pt rows: {err}")
    if "python" not in paths.plugins() or importlib.util.find_spec("torch") is None:
        say("  model: no python: rows: it needs the Python plugin and torch (the algorithm calls the torch module)")
    else:
        # The same torch module; in the C++ loop's embedded interpreter too, where one thread is asked of torch
        # through OMP_NUM_THREADS.
        found.append(Form(NETWORK, "python:", default_algorithm.MODEL, "torch module (default.reconstruct)",
                          default.reconstruct, env={"OMP_NUM_THREADS": "1"}))
    found += _savedmodel(cache, say)
    centroid = str(baseline.onnx_model())
    found.append(Form(CENTROID, ".onnx", centroid, "onnxruntime InferenceSession.run", _ort(centroid)))
    return found


def _savedmodel(cache: Path, say) -> list[Form]:
    """The SavedModel form (the same network in Keras), or none, said why."""
    if "tf" not in paths.plugins():
        say("  model: no SavedModel rows: the TensorFlow plugin was not built")
        return []
    try:
        from juno_bridge.bench.tf import _single_threaded_tf
        from juno_bridge.demo.models import keras_port

        tf = _single_threaded_tf()
    except ImportError as err:
        say(f"  model: no SavedModel rows: TensorFlow is not importable ({err})")
        return []
    saved = keras_port.saved_model(cache)
    serving = tf.saved_model.load(str(saved)).signatures["serving_default"]
    return [Form(NETWORK, "SavedModel", str(saved), "tf.saved_model.load signature",
                 lambda x: {k: v.numpy() for k, v in serving(pmt=tf.constant(x)).items()})]


def _events(batch: int) -> np.ndarray:
    """`batch` toy events as one dense, 64-byte aligned [B, 2, 17612] float32 input."""
    from juno_bridge.demo.detector import N_LPMT
    from juno_bridge.demo.toymc import generate

    x = jb.empty((batch, 2, N_LPMT), np.float32)
    generate(batch, seed=batch).dense(out=x)
    return x


def _as_list(outputs) -> list[np.ndarray]:
    if isinstance(outputs, dict):
        return [np.asarray(outputs[k]) for k in ("vertex", "energy")]
    return [np.asarray(o) for o in outputs]


def _iterations(settings: Settings, batch: int, rounds: int) -> int:
    # A network call takes milliseconds (tens at B = 64): fewer calls than the built-in models' rows.
    return max(rounds, settings.iterations_for("juno", batch) // 4)


def group_rows(settings: Settings) -> list[Row]:
    """Rows (1), (2), (3) for every form and batch size, then the centroid's (1) and (3)."""
    loop = Path(paths.bin_dir()) / "jb-bench-loop"
    if not loop.exists():
        print(f"  model: no C++ rows: {loop} is missing (rebuild the package)")
    rounds = 2 if settings.is_quick else 5
    rows: list[Row] = []
    inputs = {batch: _events(batch) for batch in settings.batches}
    with tempfile.TemporaryDirectory(prefix="jb-bench-model-") as tmp, warnings.catch_warnings():
        # The python: form hands the torch module read-only views of its inputs (by design); torch only reads
        # them, but warns that it could write.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)
        for batch, x in inputs.items():  # the C++ loop runs on the same events
            x.tofile(Path(tmp) / f"pmt-{batch}.f32")
        for form in forms(paths.cache_dir()):
            rows += _form_rows(form, inputs, Path(tmp), loop if loop.exists() else None, settings, rounds)
    return rows


def _form_rows(form: Form, inputs: dict[int, np.ndarray], tmp: Path, loop: Path | None, settings: Settings,
               rounds: int) -> list[Row]:
    """(1), (2) and (3) of one form at every batch size; the centroid has no (2) (it is the yardstick only)."""
    rows: list[Row] = []
    session = jb.Session(form.path, intra_op_threads=1)
    label = f"{form.name} " if form.model == NETWORK else ".onnx centroid "
    for batch, x in inputs.items():
        out = {"vertex": jb.empty((batch, 3), np.float32), "energy": jb.empty((batch,), np.float32)}
        feed = {"pmt": x}
        session.run(feed, out=out)  # the bridge and the library agree before any number is reported
        for ours, theirs in zip(_as_list(out), _as_list(form.native(x))):
            np.testing.assert_allclose(ours, theirs.reshape(ours.shape), rtol=1e-4, atol=1e-4,
                                       err_msg=f"{form.name} B={batch}: juno-bridge vs {form.api}")
        contestants: dict[str, Measure] = {
            f"{CALLERS['native']} {form.api}": lambda k, w: time_calls(lambda: form.native(x), k, w),
        }
        if form.model == NETWORK:
            contestants[CALLERS["bridge"]] = lambda k, w: time_calls(lambda: session.run(feed, out=out), k, w)
        if loop is not None:
            contestants[CALLERS["loop"]] = lambda k, w: run_loop_binary(
                [str(loop), form.path, str(batch), str(k), str(w), "--input", str(tmp / f"pmt-{batch}.f32")],
                env=form.env)
        iterations, warmup = _iterations(settings, batch, rounds), max(2, settings.warmup // 20)
        for method, (median, p90) in side_by_side(contestants, iterations, warmup, rounds).items():
            rate = batch / (median * 1e-6)
            caller = "c++" if method == CALLERS["loop"] else "python"
            rows.append(Row("model", form.model, batch, label + method, caller, median, p90,
                            {"note": f"{rate:,.0f} ev/s", "events_per_s": rate}))
    session.close()
    return rows


def _row(rows: list[Row], model: str, batch: int, form: str, caller: str) -> Row | None:
    return find_row(rows, model, batch, f"{form} {CALLERS[caller][:3]}", "model")


def group_targets(rows: list[Row]) -> list[Target]:
    """Printed, never asserted: per form and batch, the bridge's overhead per event against the library's own
    Python API (in us, and as a ratio); per batch, the python: method from C++ against the torch module in
    Python; the network's cost per event against the centroid's, at the largest batch measured."""
    targets: list[Target] = []
    names = dict.fromkeys(r.method.split(" ")[0] for r in rows if r.model == NETWORK)
    for batch in sorted({r.batch for r in rows}):
        for name in names:
            native, ours = _row(rows, NETWORK, batch, name, "native"), _row(rows, NETWORK, batch, name, "bridge")
            if native and ours:
                targets.append((f"model {name} B={batch}: juno-bridge Python - own Python API, per event in us",
                                (ours.median_us - native.median_us) / batch, None, False))
                targets.append((f"model {name} B={batch}: juno-bridge Python / own Python API",
                                ours.median_us / native.median_us, 1.05, False))
        # The python: method from C++ runs the same torch module in an embedded interpreter (the plugin keeps
        # freed heap memory for reuse: README, "Measured").
        native, loop = _row(rows, NETWORK, batch, "python:", "native"), _row(rows, NETWORK, batch, "python:", "loop")
        if native and loop:
            targets.append((f"model python: B={batch}: juno-bridge C++ loop / the torch module in Python",
                            loop.median_us / native.median_us, 1.1, False))
    batch = max((r.batch for r in rows), default=64)  # 64 in the default settings
    net, centroid = _row(rows, NETWORK, batch, ".onnx", "loop"), find_row(rows, CENTROID, batch, ".onnx centroid (3)")
    targets.append((f"model B={batch}: network / centroid cost per event, ONNX Runtime from C++",
                    net.median_us / centroid.median_us if net and centroid else None, None, False))
    return targets
