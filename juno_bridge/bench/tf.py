"""The TensorFlow rows of the benchmark: four ways to run the same Keras network, side by side.

    (a) the SavedModel's serving signature called from TensorFlow Python (tf.saved_model.load)
    (b) Keras Model.predict_on_batch
    (c) juno-bridge from Python, the same SavedModel (Session.run with out=, 64-byte aligned input)
    (d) juno-bridge from a C++ loop (jb-bench-loop, built with the package)

Two models: "tiny" ([B, 8] -> Dense 4) measures per-call overhead; "juno" ([B, 2, 17612] -> Flatten
-> Dense 64 -> ReLU -> Dense 4) a JUNO-sized event batch. One intra-op thread everywhere; juno-bridge
runs ops on the caller's thread (inter-op -1, its default for TensorFlow). Methods are measured in
interleaved rounds. Run: python -m juno_bridge.bench.tf [--quick]
"""
from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's INFO lines would hide the table

import juno_bridge as jb  # noqa: E402
from juno_bridge import paths  # noqa: E402
from juno_bridge._hits import NUM_LPMT  # noqa: E402
from juno_bridge.bench.common import (Row, Settings, Target, command_line, format_target,  # noqa: E402
                                      machine_description, ratio_table, run_loop_binary, side_by_side,
                                      time_calls)

METHODS = {"a": "(a) TF Python, SavedModel serving signature", "b": "(b) Keras predict_on_batch",
           "c": "(c) juno-bridge SavedModel, Python", "d": "(d) juno-bridge SavedModel, C++ loop"}
SHAPES = {"tiny": (8,), "juno": (2, NUM_LPMT)}


def _single_threaded_tf():
    import tensorflow as tf
    try:  # only possible before TensorFlow's runtime starts; a process that already ran TF keeps its pools
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass
    return tf


def _keras_model(name: str):
    import keras
    keras.utils.set_random_seed(0)
    inp = keras.Input(SHAPES[name], name="x")
    if name == "tiny":
        out = keras.layers.Dense(4)(inp)
    else:
        out = keras.layers.Dense(4)(keras.layers.Dense(64, activation="relu")(keras.layers.Flatten()(inp)))
    return keras.Model(inp, out)


def _models(workdir: Path, names) -> dict:
    """name -> (keras model, SavedModel directory); both kept in workdir and reused."""
    import keras
    out = {}
    for name in names:
        saved, kept = workdir / f"{name}.savedmodel", workdir / f"{name}.keras"
        if saved.joinpath("saved_model.pb").exists() and kept.exists():
            model = keras.saving.load_model(kept)
        else:
            model = _keras_model(name)
            model.save(kept)
            model.export(str(saved), verbose=False)
        out[name] = (model, saved)
    return out


def run_bench(quick: bool = False, batch_sizes=(1, 64), models=("tiny", "juno"),
              workdir: str | os.PathLike | None = None) -> list[dict]:
    """Measures (a)-(d) for every model and batch size; one dict per row (group "tf")."""
    tf = _single_threaded_tf()
    workdir = Path(workdir or Path.home() / ".cache" / "juno_bridge" / f"bench_tf-{tf.__version__}")
    workdir.mkdir(parents=True, exist_ok=True)
    loop = Path(paths.bin_dir()) / "jb-bench-loop"
    rows = []
    for name, (model, saved) in _models(workdir, models).items():
        serving = tf.saved_model.load(str(saved)).signatures["serving_default"]
        session = jb.Session(saved, intra_op_threads=1)
        out_name = session.outputs()[0].name
        for batch in batch_sizes:
            x = jb.empty((batch, *SHAPES[name]), np.float32)
            x[...] = np.random.default_rng(batch).standard_normal(x.shape)
            y = jb.empty((batch, 4), np.float32)
            feed, out = {"x": x}, {out_name: y}

            def a():
                return serving(x=tf.constant(x))[out_name].numpy()

            def b():
                return model.predict_on_batch(x)

            session.run(feed, out=out)  # the paths agree before any number is reported
            np.testing.assert_allclose(y, a(), rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(y, b(), rtol=1e-5, atol=1e-5)
            contestants = {
                "a": lambda k, w: time_calls(a, k, w),
                "b": lambda k, w: time_calls(b, k, w),
                "c": lambda k, w: time_calls(lambda: session.run(feed, out=out), k, w),
            }
            if loop.exists():
                contestants["d"] = lambda k, w: run_loop_binary([str(loop), str(saved), str(batch), str(k), str(w)])
            heavy = name == "juno" and batch > 1
            iterations = (30 if quick else 150) if heavy else (300 if quick else 2000)
            warmup = 3 if heavy else 50
            for k, (median, p90) in side_by_side(contestants, iterations, warmup).items():
                rows.append({"group": "tf", "model": name, "batch": batch, "method": METHODS[k],
                             "caller": "c++" if k == "d" else "python", "median_us": median, "p90_us": p90})
        session.close()
    return rows


def targets(rows: list[dict]) -> list[tuple[str, float | None, float, bool]]:
    """(description, measured ratio, target, higher_is_better) for issue 8's speed targets: on the tiny
    model (c) at least 20x faster than (a); at B = 64 every juno-bridge path within 1.05x of the fastest
    TensorFlow path."""
    def median(model: str, batch: int, key: str) -> float | None:
        return next((r["median_us"] for r in rows
                     if r["model"] == model and r["batch"] == batch and r["method"].startswith(f"({key})")), None)

    result = []
    for batch in sorted({r["batch"] for r in rows if r["model"] == "tiny"}):
        a, c = median("tiny", batch, "a"), median("tiny", batch, "c")
        result.append((f"tf tiny B={batch}: (a)/(c), juno-bridge Python vs TF Python signature",
                       a / c if a and c else None, 20.0, True))
    for model in ("tiny", "juno"):
        tf_paths = [m for m in (median(model, 64, "a"), median(model, 64, "b")) if m]
        for key in ("c", "d"):
            ours = median(model, 64, key)
            if tf_paths and ours:
                result.append((f"tf {model} B=64: ({key}) vs the fastest TensorFlow path", ours / min(tf_paths),
                               1.05, False))
    return result


def format_table(rows: list[dict]) -> str:
    lines = [f"machine: {machine_description()}", "one intra-op thread", *ratio_table(rows, "model", "TF", 46)]
    lines += [format_target(*t) for t in targets(rows)]
    return "\n".join(lines)


def group_rows(settings: Settings) -> list[Row]:
    """The rows of `juno-bridge bench --only tf`: SavedModels from TensorFlow Python, Keras and juno-bridge."""
    return [Row(r["group"], r["model"], r["batch"], r["method"], r["caller"], r["median_us"], r["p90_us"])
            for r in run_bench(quick=settings.is_quick, batch_sizes=settings.batches, models=settings.models)]


def group_targets(rows: list[Row]) -> list[Target]:
    return targets([asdict(r) for r in rows])


def main(argv=None) -> None:
    args = command_line(__doc__, argv)
    print(format_table(run_bench(quick=args.quick, batch_sizes=args.batch)))


if __name__ == "__main__":
    main()
