"""The ONNX rows of the benchmark: one model through onnxruntime's Python API and every juno-bridge path.

    (a) onnxruntime InferenceSession.run          (b) onnxruntime io_binding, bound once
    (c) juno-bridge Session.run(out=)              (c') Session.run, runtime-allocated outputs
    (c'') Session.bind(...).run()                  (d) juno-bridge C++ loop (jb-bench-loop)
    (e) a raw C loop over the ONNX Runtime C API (jb-ort-raw-loop): the floor every ratio is taken against
JUNO-sized model, B = 64, 8 run_async calls in flight from one thread, per request:
    (f) through ONNX Runtime's RunAsync (a session of 2 intra-op threads: async_mode "native")
    (f') through the core's worker pool (sessions of 1 intra-op thread: async_mode "pool")
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

import juno_bridge as jb
from juno_bridge import paths
from juno_bridge.bench.common import (Measure, Row, Settings, Target, async_in_flight, find_row, run_loop_binary,
                                      side_by_side, time_calls)
from juno_bridge.demo.models.builtin import builtin_input, builtin_model


def group_rows(settings: Settings) -> list[Row]:
    """(a) onnxruntime Python, (b) io_binding, (c) juno-bridge Python, (d) C++ loop, (e) raw C loop."""
    import onnxruntime as ort

    rows: list[Row] = []
    ort_library = jb.onnxruntime_info()["path"]
    for model in settings.models:
        path = str(builtin_model(model))
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        ort_session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        session = jb.Session(path, intra_op_threads=1, inter_op_threads=1)
        input_name = session.inputs()[0].name
        for batch in settings.batches:
            n = settings.iterations_for(model, batch)
            x = builtin_input(model, batch)
            y = np.empty((batch, 4), np.float32)
            feed = {input_name: x}
            out = {"y": y}

            bound = session.bind(feed, out=out)
            binding = ort_session.io_binding()
            binding.bind_cpu_input(input_name, x)
            binding.bind_output("y", "cpu", 0, np.float32, y.shape, y.ctypes.data)
            contestants: dict[str, Measure] = {
                "(a) onnxruntime InferenceSession.run":
                    lambda k, w: time_calls(lambda: ort_session.run(None, feed), k, w),
                "(b) onnxruntime io_binding, bound once":
                    lambda k, w: time_calls(lambda: ort_session.run_with_iobinding(binding), k, w),
                "(c) juno-bridge Session.run(out=)":
                    lambda k, w: time_calls(lambda: session.run(feed, out=out), k, w),
                "(c') juno-bridge Session.run, runtime-allocated":
                    lambda k, w: time_calls(lambda: session.run(feed), k, w),
                "(c'') juno-bridge Session.bind(...).run()":
                    lambda k, w: time_calls(bound.run, k, w),
            }
            loop, raw = Path(paths.bin_dir()) / "jb-bench-loop", Path(paths.bin_dir()) / "jb-ort-raw-loop"
            if loop.exists():
                contestants["(d) juno-bridge C++ loop"] = lambda k, w: run_loop_binary(
                    [str(loop), path, str(batch), str(k), str(w), "--onnxruntime", ort_library])
            if raw.exists():
                contestants["(e) raw C loop over the ONNX Runtime C API"] = lambda k, w: run_loop_binary(
                    [str(raw), path, str(batch), str(k), str(w), ort_library])
            for method, timing in side_by_side(contestants, n, settings.warmup).items():
                caller = "c++" if method.startswith("(d)") else "c" if method.startswith("(e)") else "python"
                rows.append(Row("onnx", model, batch, method, caller, *timing))
            # Both sessions agree before any number is reported.
            expected = ort_session.run(None, feed)[0]
            if not np.array_equal(session.run(feed)["y"], expected):
                raise AssertionError(f"juno-bridge and onnxruntime disagree on {model} B={batch}")
        session.close()
    if "juno" in settings.models and 64 in settings.batches:
        rows += async_rows(settings.iterations_for("juno", 64), settings.warmup)
    return rows


def async_rows(requests: int, warmup: int) -> list[Row]:
    """(f) run_async through RunAsync vs (f') through the worker pool, both on every core of the machine."""
    path = str(builtin_model("juno"))
    native = jb.Session(path, intra_op_threads=2, async_runs="native", shared=False)
    pool = jb.Session(path, intra_op_threads=1, shared=False)
    if (native.async_mode, pool.async_mode) != ("native", "pool"):
        raise AssertionError(f"async modes {native.async_mode!r}, {pool.async_mode!r}; expected native, pool")
    expected = pool.run([builtin_input("juno", 64)])["y"]
    if not np.array_equal(native.run_async([builtin_input("juno", 64)]).result()["y"], expected):
        raise AssertionError("run_async through RunAsync and run disagree on juno B=64")
    contestants: dict[str, Measure] = {
        "(f) run_async, 8 in flight from 1 thread: RunAsync": lambda k, w: async_in_flight(native, 64, max(16, k)),
        "(f') run_async, 8 in flight from 1 thread: worker pool": lambda k, w: async_in_flight(pool, 64, max(16, k)),
    }
    rows = [Row("onnx", "juno", 64, method, "python", *timing)
            for method, timing in side_by_side(contestants, requests, min(warmup, 16)).items()]
    native.close()
    pool.close()
    return rows


def group_targets(rows: list[Row]) -> list[Target]:
    """(description, measured ratio, target, higher_is_better) for issue 3's speed targets."""
    def ratio(a: Row | None, b: Row | None) -> float | None:
        return a.median_us / b.median_us if a and b else None

    targets = []
    for batch in (1, 64):
        a, c = find_row(rows, "tiny", batch, "(a)"), find_row(rows, "tiny", batch, "(c)")
        d, e = find_row(rows, "tiny", batch, "(d)"), find_row(rows, "tiny", batch, "(e)")
        targets.append((f"tiny B={batch}: (a)/(c), juno-bridge Python vs onnxruntime Python", ratio(a, c), 2.5, True))
        targets.append((f"tiny B={batch}: (c)/(e), juno-bridge Python vs raw C", ratio(c, e), 1.3, False))
        targets.append((f"tiny B={batch}: (c'')/(e), juno-bridge Python bound vs raw C",
                        ratio(find_row(rows, "tiny", batch, "(c'')"), e), 1.3, False))
        targets.append((f"tiny B={batch}: (d)/(e), juno-bridge C++ vs raw C", ratio(d, e), 1.1, False))
    e = find_row(rows, "juno", 64, "(e)")
    for label in ("(c)", "(c')", "(c'')", "(d)"):
        r = find_row(rows, "juno", 64, label)
        if r is not None:
            targets.append((f"juno B=64: {label}/(e) vs raw C", ratio(r, e), 1.03, False))
    f, f_pool = find_row(rows, "juno", 64, "(f)"), find_row(rows, "juno", 64, "(f')")
    if f and f_pool:
        targets.append(("juno B=64: throughput of run_async through RunAsync (f) / the worker pool (f')",
                        ratio(f_pool, f), 1.0, True))
    return targets
