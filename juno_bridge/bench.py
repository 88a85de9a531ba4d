"""`juno-bridge bench`: every way to run the same model, measured side by side in one run.

Each row is the median and 90th percentile of single-call times after warm-up, one intra-op thread.
The report prints what was compared, on what machine, and ratios against the alternatives; targets
are shown as met or missed, never asserted (shared machines are noisy).
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from juno_bridge.models.builtin import builtin_input, builtin_model


@dataclass
class Row:
    group: str          # what is being compared, e.g. "onnx"
    model: str          # "tiny" or "juno"
    batch: int
    method: str         # a short label, e.g. "(a) onnxruntime InferenceSession.run"
    caller: str         # "python" or "c++"
    median_us: float
    p90_us: float
    extra: dict = field(default_factory=dict)


@dataclass
class Settings:
    iterations: int = 2000
    warmup: int = 200
    batches: tuple[int, ...] = (1, 64)
    models: tuple[str, ...] = ("tiny", "juno")

    @classmethod
    def quick(cls) -> "Settings":
        return cls(iterations=300, warmup=50)

    def iterations_for(self, model: str, batch: int) -> int:
        # The JUNO-sized model at B = 64 takes milliseconds per call: fewer calls give the same precision.
        return max(50, self.iterations // 10) if model == "juno" and batch > 1 else self.iterations


def time_calls(call: Callable[[], object], iterations: int, warmup: int) -> tuple[float, float]:
    """Median and p90 of single-call wall times, in microseconds."""
    for _ in range(warmup):
        call()
    clock = time.perf_counter_ns
    samples = []
    for _ in range(iterations):
        t0 = clock()
        call()
        samples.append(clock() - t0)
    samples.sort()
    return samples[len(samples) // 2] / 1e3, samples[int(len(samples) * 0.9)] / 1e3


Measure = Callable[[int, int], "tuple[float, float] | None"]  # (iterations, warmup) -> (median, p90)


def side_by_side(contestants: dict[str, Measure], iterations: int, warmup: int,
                 rounds: int = 5) -> dict[str, tuple[float, float]]:
    """Measures every contestant in interleaved rounds, so a change of load on a shared machine hits
    all of them alike; each result is the median over rounds of the round's median and p90."""
    per_round: dict[str, list[tuple[float, float]]] = {name: [] for name in contestants}
    chunk = max(1, iterations // rounds)
    for r in range(rounds):
        for name, measure in contestants.items():
            timing = measure(chunk, warmup if r == 0 else max(1, warmup // 10))
            if timing is not None:
                per_round[name].append(timing)
    result = {}
    for name, timings in per_round.items():
        if timings:
            medians = sorted(t[0] for t in timings)
            p90s = sorted(t[1] for t in timings)
            result[name] = (medians[len(medians) // 2], p90s[len(p90s) // 2])
    return result


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}"


def _run_loop_binary(argv: list[str]) -> tuple[float, float] | None:
    """Runs one of the compiled benchmark loops, which print one JSON line."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=_clean_env())
    except (OSError, subprocess.TimeoutExpired) as err:
        print(f"  ! {Path(argv[0]).name}: {err}")
        return None
    if done.returncode != 0:
        print(f"  ! {Path(argv[0]).name} failed: {done.stderr.strip()}")
        return None
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["median_us"], result["p90_us"]


def _clean_env() -> dict:
    # The C++ programs run as a framework would: no Python paths, no preloaded libraries.
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LD_LIBRARY_PATH", "LD_PRELOAD")}


def onnx_rows(settings: Settings) -> list[Row]:
    """(a) onnxruntime Python, (b) io_binding, (c) juno-bridge Python, (d) C++ loop, (e) raw C loop."""
    import onnxruntime as ort

    import juno_bridge as jb
    from juno_bridge import paths

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
                contestants["(d) juno-bridge C++ loop"] = lambda k, w: _run_loop_binary(
                    [str(loop), path, str(batch), str(k), str(w), "--onnxruntime", ort_library])
            if raw.exists():
                contestants["(e) raw C loop over the ONNX Runtime C API"] = lambda k, w: _run_loop_binary(
                    [str(raw), path, str(batch), str(k), str(w), ort_library])
            for method, timing in side_by_side(contestants, n, settings.warmup).items():
                caller = "c++" if method.startswith("(d)") else "c" if method.startswith("(e)") else "python"
                rows.append(Row("onnx", model, batch, method, caller, *timing))
            # Both sessions agree before any number is reported.
            expected = ort_session.run(None, feed)[0]
            if not np.array_equal(session.run(feed)["y"], expected):
                raise AssertionError(f"juno-bridge and onnxruntime disagree on {model} B={batch}")
        session.close()
    return rows


def _find(rows: list[Row], model: str, batch: int, prefix: str, group: str | None = None) -> Row | None:
    for r in rows:
        if r.model == model and r.batch == batch and r.method.startswith(prefix) and group in (None, r.group):
            return r
    return None


def onnx_targets(rows: list[Row]) -> list[tuple[str, float | None, float, bool]]:
    """(description, measured ratio, target, higher_is_better) for issue 3's speed targets."""
    def ratio(a: Row | None, b: Row | None) -> float | None:
        return a.median_us / b.median_us if a and b else None

    targets = []
    for batch in (1, 64):
        a, c = _find(rows, "tiny", batch, "(a)"), _find(rows, "tiny", batch, "(c)")
        d, e = _find(rows, "tiny", batch, "(d)"), _find(rows, "tiny", batch, "(e)")
        targets.append((f"tiny B={batch}: (a)/(c), juno-bridge Python vs onnxruntime Python", ratio(a, c), 2.5, True))
        targets.append((f"tiny B={batch}: (c)/(e), juno-bridge Python vs raw C", ratio(c, e), 1.3, False))
        targets.append((f"tiny B={batch}: (c'')/(e), juno-bridge Python bound vs raw C",
                        ratio(_find(rows, "tiny", batch, "(c'')"), e), 1.3, False))
        targets.append((f"tiny B={batch}: (d)/(e), juno-bridge C++ vs raw C", ratio(d, e), 1.1, False))
    e = _find(rows, "juno", 64, "(e)")
    for label in ("(c)", "(c')", "(c'')", "(d)"):
        r = _find(rows, "juno", 64, label)
        if r is not None:
            targets.append((f"juno B=64: {label}/(e) vs raw C", ratio(r, e), 1.03, False))
    return targets


def format_report(rows: list[Row], targets: list[tuple[str, float | None, float, bool]]) -> str:
    lines = [f"machine: {machine_description()}", ""]
    header = (f"{'group':<14}{'model':<6}{'B':>4}  {'method':<53}{'caller':<8}{'median us':>11}{'p90 us':>10}"
              f"{'vs (e)':>8}")
    lines += [header, "-" * len(header)]
    for r in rows:
        base = _find(rows, r.model, r.batch, "(e)", "onnx") if r.group == "onnx" else None
        vs = f"{r.median_us / base.median_us:7.2f}x" if base else ""
        note = f"  {r.extra['note']}" if r.extra.get("note") else ""
        lines.append(f"{r.group:<14}{r.model:<6}{r.batch:>4}  {r.method[:52]:<53}{r.caller:<8}"
                     f"{r.median_us:>11.2f}{r.p90_us:>10.2f}{vs:>8}{note}")
    if targets:
        lines += ["", "targets (ratios of medians):"]
        for text, value, target, higher in targets:
            if value is None:
                lines.append(f"  {text}: not measured")
                continue
            met = value >= target if higher else value <= target
            sign = ">=" if higher else "<="
            unit = " us" if " in us" in text else "x"
            lines.append(f"  {text}: {value:.2f}{unit} (target {sign} {target}{unit}) {'met' if met else 'MISSED'}")
    return "\n".join(lines)


def python_rows(settings: Settings) -> list[Row]:
    """Issue 5's rows (juno_bridge.bench_python): the Python-algorithm method and the scatter."""
    from juno_bridge import bench_python

    quick = settings.iterations < Settings().iterations
    return [Row(r["group"], "-", 1, r["method"], r["caller"].lower(), r["median_us"], r["p90_us"],
                {"note": r.get("note", "")}) for r in bench_python.run_bench(quick=quick)]


def python_targets(rows: list[Row]) -> list[tuple[str, float | None, float, bool]]:
    def median(group: str, prefix: str) -> float | None:
        r = next((r for r in rows if r.group == group and r.method.startswith(prefix)), None)
        return r.median_us if r else None

    a, b, c = median("python-method", "(a)"), median("python-method", "(b)"), median("python-method", "(c)")
    ours, numpy_ref = median("scatter", "juno-bridge"), median("scatter", "numpy")
    return [("python method: (a)/(b), JUNO-style copies vs juno-bridge python: from C++",
             a / b if a and b else None, 100.0, True),
            ("python method: (b) - (c) in us, from C++ vs the direct call",
             b - c if b is not None and c is not None else None, 5.0, False),
            ("scatter: numpy ufunc.at / juno-bridge", numpy_ref / ours if ours and numpy_ref else None, 5.0, True)]


def torch_rows(settings: Settings) -> list[Row]:
    """Issue 4's rows (juno_bridge.bench_torch); none when torch or the plugin is missing."""
    from juno_bridge import paths

    if "torch" not in paths.plugins():
        print("  torch: the plugin was not built; no torch rows")
        return []
    from juno_bridge import bench_torch

    quick = settings.iterations < Settings().iterations
    return [Row("torch", r["group"], r["batch"], r["method"], r["caller"].lower(), r["median_us"], r["p90_us"])
            for r in bench_torch.run_bench(batch_sizes=settings.batches, quick=quick, groups=settings.models)]


def torch_targets(rows: list[Row]) -> list[tuple[str, float | None, float, bool]]:
    targets = []
    for batch in (1, 64):
        a, c = _find(rows, "tiny", batch, "(a)"), _find(rows, "tiny", batch, "(c)")
        targets.append((f"torch tiny B={batch}: (a)/(c), juno-bridge .pt2 vs nn.Module from Python",
                        a.median_us / c.median_us if a and c else None, 2.5, True))
    native = [r for r in rows if r.model == "juno" and r.batch == 64 and r.method[:3] in ("(a)", "(b)")]
    best = min((r.median_us for r in native), default=None)
    for label in ("(c)", "(d)", "(e)"):
        r = _find(rows, "juno", 64, label)
        targets.append((f"torch juno B=64: {label} / fastest torch path",
                        r.median_us / best if r and best else None, 1.05, False))
    return targets


def tf_rows(settings: Settings) -> list[Row]:
    """Issue 8's rows (juno_bridge.bench_tf): SavedModels from TensorFlow Python, Keras and juno-bridge;
    none, with a note, where tensorflow or the tf plugin is not installed."""
    from juno_bridge import paths

    if "tf" not in paths.plugins():
        print("  tf: the plugin was not built (pip install 'juno-bridge[tf]', then rebuild); no tf rows")
        return []
    from juno_bridge import bench_tf

    quick = settings.iterations < Settings().iterations
    return [Row(r["group"], r["model"], r["batch"], r["method"], r["caller"], r["median_us"], r["p90_us"])
            for r in bench_tf.run_bench(quick=quick, batch_sizes=settings.batches, models=settings.models)]


def tf_targets(rows: list[Row]) -> list[tuple[str, float | None, float, bool]]:
    if not rows:
        return []
    from juno_bridge import bench_tf

    return bench_tf.targets([asdict(r) for r in rows])


def remote_rows(settings: Settings) -> list[Row]:
    """Issue 7's rows (juno_bridge.bench_remote): a Triton server on loopback, and Dask workers."""
    from juno_bridge import bench_remote

    quick = settings.iterations < Settings().iterations
    return [Row(r["group"], r["model"], r["batch"], r["method"], r["caller"], r["median_us"], r["p90_us"],
                {k: v for k, v in r.items() if k in ("note", "events_per_s")}) for r in bench_remote.run_bench(quick)]


def remote_targets(rows: list[Row]) -> list[tuple[str, float | None, float, bool]]:
    from juno_bridge import bench_remote

    return bench_remote.targets([{**asdict(r), **r.extra} for r in rows])


def sniper_rows(settings: Settings) -> list[Row]:
    """Issue 12's rows (juno_bridge.bench_sniper): JunoBridgeAlg and the tensor store in SNiPER jobs."""
    from juno_bridge import bench_sniper

    rows = bench_sniper.run_bench(settings.iterations < Settings().iterations)
    return [Row(*(r[k] for k in ("group", "model", "batch", "method", "caller", "median_us", "p90_us")),
                {"note": r["note"]}) for r in rows]


def sniper_targets(rows: list[Row]) -> list[tuple[str, float | None, float, bool]]:
    from juno_bridge import bench_sniper

    return bench_sniper.targets([asdict(r) for r in rows])


GROUPS = {"onnx": (onnx_rows, onnx_targets), "torch": (torch_rows, torch_targets),
          "python": (python_rows, python_targets), "tf": (tf_rows, tf_targets),
          "remote": (remote_rows, remote_targets), "sniper": (sniper_rows, sniper_targets)}


def run(settings: Settings, groups: tuple[str, ...] = ("onnx",), json_path: str | None = None) -> str:
    rows: list[Row] = []
    targets = []
    for name in groups:
        measure, check = GROUPS[name]
        try:
            group_rows = measure(settings)
        except Exception as err:  # one group that cannot run does not cost the others' numbers
            print(f"  {name}: not measured: {str(err).splitlines()[0]}")
            continue
        rows += group_rows
        targets += check(group_rows)
    report = format_report(rows, targets)
    if json_path:
        Path(json_path).write_text(json.dumps({
            "machine": machine_description(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "settings": asdict(settings), "rows": [asdict(r) for r in rows],
            "targets": [dict(text=t, ratio=v, target=g, higher_is_better=h) for t, v, g, h in targets],
        }, indent=2))
    return report

