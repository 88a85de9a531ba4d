"""What every benchmark group shares: the row record, settings, the timers, the machine line, the compiled
loops' runner and the way a target is printed.

Each group module (onnx, torch, tf, python, remote) measures its rows with these; the runner
(juno_bridge.bench) puts them into one report.
"""
from __future__ import annotations

import argparse
import re
import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

# (description, measured ratio, target or None for a figure shown without one, higher_is_better)
Target = tuple[str, "float | None", "float | None", bool]


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

    @property
    def is_quick(self) -> bool:
        return self.iterations < Settings().iterations

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


def async_in_flight(session, batch: int, requests: int, in_flight: int = 8) -> tuple[float, float]:
    """Wall time per request (us) with `in_flight` run_async calls of the JUNO-sized model kept in flight
    by this one thread, each into its own out= buffer: (per request, per request)."""
    from collections import deque

    from juno_bridge.demo.models.builtin import builtin_input

    x = builtin_input("juno", batch)
    outs = [np.empty((batch, 4), np.float32) for _ in range(in_flight)]
    pending: deque = deque()
    t0 = time.perf_counter()
    for i in range(requests):
        if len(pending) == in_flight:
            pending.popleft().result()  # frees out buffer i % in_flight for this call
        pending.append(session.run_async({"pmt": x}, out={"y": outs[i % in_flight]}))
    while pending:
        pending.popleft().result()
    per_request = (time.perf_counter() - t0) / requests * 1e6
    return per_request, per_request


def threads_per_call(work: Callable[[], None], threads: int, calls_per_thread: int) -> tuple[float, float]:
    """Wall time per call (us) with `threads` threads each running `work` (which makes `calls_per_thread`
    calls) at once: (per call, per call)."""
    import threading

    workers = [threading.Thread(target=work) for _ in range(threads)]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    per_call = (time.perf_counter() - t0) / (threads * calls_per_thread) * 1e6
    return per_call, per_call


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


def run_loop_binary(argv: list[str], env: dict | None = None) -> tuple[float, float] | None:
    """Runs one of the compiled benchmark loops, which print one JSON line; None (said why) when it fails.
    `env`: variables set on top of framework_env()."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600, env={**framework_env(), **(env or {})})
    except (OSError, subprocess.TimeoutExpired) as err:
        print(f"  ! {Path(argv[0]).name}: {err}")
        return None
    if done.returncode != 0:
        print(f"  ! {Path(argv[0]).name} failed: {done.stderr.strip()}")
        return None
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["median_us"], result["p90_us"]


def framework_env() -> dict:
    """The environment of a compiled program run as a framework would run it: no Python paths, no preloaded
    libraries."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LD_LIBRARY_PATH", "LD_PRELOAD")}


def find_row(rows: list[Row], model: str, batch: int, prefix: str, group: str | None = None) -> Row | None:
    for r in rows:
        if r.model == model and r.batch == batch and r.method.startswith(prefix) and group in (None, r.group):
            return r
    return None


def format_target(text: str, value: float | None, target: float | None, higher: bool, judged: bool = True) -> str:
    """One target line: the measured figure against the target, met or MISSED (never asserted); a figure
    without a target is shown as it is. A figure in microseconds says so in its text ("us"); any other is
    a ratio (x). ``judged=False`` (a --quick run: too few iterations for the targets) shows the figure and
    the target without a verdict."""
    if value is None:
        return f"  {text}: not measured"
    unit = " us" if re.search(r"\bus\b", text) else "x"
    if target is None:
        return f"  {text}: {value:.2f}{unit}"
    sign = ">=" if higher else "<="
    if not judged:
        return f"  {text}: {value:.2f}{unit} (target {sign} {target}{unit}: not judged at --quick)"
    met = value >= target if higher else value <= target
    return f"  {text}: {value:.2f}{unit} (target {sign} {target}{unit}) {'met' if met else 'MISSED'}"


def ratio_table(rows: list[dict], model_key: str, library: str, method_width: int) -> list[str]:
    """The rows of a library's group (torch, tf) with, per model and batch, each method's ratio to (a) and
    to the faster of the library's own paths (a) and (b)."""
    lines = [f"{'model':6} {'B':>4}  {'method':{method_width}} {'caller':7} {'median us':>10} {'p90 us':>10} "
             f"{'vs (a)':>7} {'vs best ' + library:>{9 + len(library)}}"]
    for model, batch in dict.fromkeys((r[model_key], r["batch"]) for r in rows):
        group = [r for r in rows if r[model_key] == model and r["batch"] == batch]
        a = next(r["median_us"] for r in group if r["method"].startswith("(a)"))
        best = min(r["median_us"] for r in group if r["method"][:3] in ("(a)", "(b)"))
        for r in group:
            lines.append(f"{model:6} {batch:>4}  {r['method']:{method_width}} {r['caller']:7} {r['median_us']:>10.1f} "
                         f"{r['p90_us']:>10.1f} {a / r['median_us']:>6.2f}x "
                         f"{r['median_us'] / best:>{8 + len(library)}.2f}x")
    lines.append(f"'vs (a)': how many times faster than (a); 'vs best {library}': time relative to the faster of "
                 f"(a), (b)")
    return lines


def command_line(doc: str, argv=None) -> argparse.Namespace:
    """The options of a group module run on its own (python -m juno_bridge.bench.<group>)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a quick look, noisier)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 64], help="batch sizes (default 1 64)")
    args = parser.parse_args(argv)
    args.batch = tuple(args.batch)
    return args
