"""Benchmark of the Python-algorithm method and of the sparse-hit scatter, side by side in one run.

Per event, 2 x 17,612 float32 in and 4 values out, the same callable (`per_event` below):
  (a) JUNO-style from C++: element-by-element copy into new numpy arrays in a dict, call, copy back
      (cpp/tools/python_method_bench.cpp, through the CPython API);
  (b) juno-bridge `python:` session from C++ (same program, same process, on the C++ buffers);
  (c) the callable called directly from Python on ready numpy arrays.
Scatter: a 1 MeV-like event (~1,500 hits) into a [2, 17612] slot, juno-bridge vs numpy ufunc.at.

    python -m juno_bridge.bench.python [--quick]
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import juno_bridge as jb
from juno_bridge import paths
from juno_bridge._hits import NUM_LPMT
from juno_bridge.algorithm import algorithm
from juno_bridge.bench.common import Row, Settings, Target, command_line
PHOTOELECTRONS_PER_MEV = 1345.0  # JUNO's light yield at the centre (juno_bridge/demo/toymc.py)


# How the C++ program and the python: session find the callable (this module may run as __main__).
PER_EVENT = "juno_bridge.bench.python:per_event"


@algorithm(inputs={"pmt": ("float32", (2, NUM_LPMT))},
           outputs={"vertex": ("float32", (3,)), "energy": ("float32", (1,))})
def per_event(inputs, outputs):
    """A light reconstruction (total nPE -> energy, charge-weighted PMT index -> a vertex-like triple), so
    that the timings show the cost of getting data in and out, not of the algorithm."""
    npe = inputs["pmt"][0]
    total = npe.sum()
    outputs["energy"][0] = total / PHOTOELECTRONS_PER_MEV
    outputs["vertex"][:] = (total, npe.argmax(), inputs["pmt"][1].min())


def _percentiles(samples_us) -> tuple[float, float]:
    a = np.asarray(samples_us, dtype=np.float64)
    return float(np.median(a)), float(np.percentile(a, 90))


def _time_us(call, repeat: int) -> list[float]:
    for _ in range(min(20, repeat)):
        call()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - t0) / 1e3)
    return samples


def _row(group, method, caller, samples, note=""):
    median, p90 = _percentiles(samples)
    return {"group": group, "method": method, "caller": caller, "median_us": median, "p90_us": p90, "note": note}


def _site_dir() -> str:
    """Where `juno_bridge` is importable from, for the embedded interpreter of the C++ program."""
    return str(Path(jb.__file__).resolve().parent.parent)


def _python_method_rows(events: int) -> list[dict]:
    exe = paths.bin_dir() / "python_method_bench"
    if not exe.exists():
        return [{"group": "python-method", "method": "(a)/(b) C++ program", "caller": "C++", "median_us": float("nan"),
                 "p90_us": float("nan"), "note": f"not built: {exe} is missing (rebuild the package)"}]
    env = dict(os.environ)
    if sys.prefix != sys.base_prefix:
        env["VIRTUAL_ENV"] = sys.prefix  # the embedded interpreter finds numpy in this venv
    # numpy's own site-packages too, for an in-place build whose package dir is not a site-packages
    extra = os.pathsep.join({_site_dir(), str(Path(np.__file__).resolve().parent.parent)})
    env["PYTHONPATH"] = extra + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    done = subprocess.run([str(exe), _site_dir(), str(events), PER_EVENT], env=env,
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{exe.name} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    times = json.loads(done.stdout)

    pmt = np.ascontiguousarray(np.random.default_rng(0).random((2, NUM_LPMT), dtype=np.float32))
    inputs = {"pmt": pmt}
    outputs = {"vertex": np.zeros(3, np.float32), "energy": np.zeros(1, np.float32)}
    direct = _time_us(lambda: per_event(inputs, outputs), max(events, 200))

    session = jb.Session(f"python:{PER_EVENT}")
    from_python = _time_us(lambda: session.run(inputs, out=outputs), max(events, 200))

    a, b, c = (_percentiles(s)[0] for s in (times["juno_style"], times["bridge_session"], direct))
    return [
        _row("python-method", "(a) JUNO-style copy into numpy dict, call, copy back", "C++", times["juno_style"],
             f"{a / b:.0f}x slower than (b)"),
        _row("python-method", "(b) juno-bridge python: session", "C++", times["bridge_session"],
             f"{a / b:.0f}x faster than (a); {b - c:+.1f} us vs (c)"),
        _row("python-method", "(c) the callable called directly", "Python", direct, "reference"),
        _row("python-method", "juno-bridge python: session", "Python", from_python,
             f"{_percentiles(from_python)[0] - c:+.1f} us vs (c)"),
    ]


def one_mev_event(rng: np.random.Generator, hits: int = 1500):
    """Hits as the event model gives them: a few hundred fired PMTs, several hits on some."""
    fired = rng.choice(NUM_LPMT, size=hits // 2, replace=False)
    ids = rng.choice(fired, size=hits).astype(np.int32)
    return ids, rng.exponential(1.0, hits).astype(np.float32), rng.normal(100.0, 5.0, hits).astype(np.float32)


def numpy_scatter(ids, npe, t, out, empty=0.0):
    """The numpy way: unbuffered ufunc.at for the sum and the minimum, then the dark PMTs."""
    out[0].fill(0.0)
    np.add.at(out[0], ids, npe)
    out[1].fill(np.inf)
    np.minimum.at(out[1], ids, t)
    dark = np.isinf(out[1])
    out[0][dark] = empty
    out[1][dark] = empty
    return out


def _scatter_rows(repeat: int) -> list[dict]:
    ids, npe, t = one_mev_event(np.random.default_rng(1))
    ours, theirs = np.empty((2, NUM_LPMT), np.float32), np.empty((2, NUM_LPMT), np.float32)
    jb.scatter_hits(ids, npe, t, ours)
    numpy_scatter(ids, npe, t, theirs)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)  # a benchmark of two different answers is worthless
    a = _time_us(lambda: jb.scatter_hits(ids, npe, t, ours), repeat)
    b = _time_us(lambda: numpy_scatter(ids, npe, t, theirs), repeat)
    ratio = _percentiles(b)[0] / _percentiles(a)[0]
    return [_row("scatter", f"juno-bridge scatter_hits ({len(ids)} hits -> [2, {NUM_LPMT}])", "Python", a,
                 f"{ratio:.1f}x faster than numpy"),
            _row("scatter", "numpy add.at / minimum.at", "Python", b, "reference")]


def run_bench(quick: bool = False) -> list[dict]:
    """Rows: group, method, caller, median_us, p90_us, note (the ratio)."""
    events = 30 if quick else 200
    return _python_method_rows(events) + _scatter_rows(200 if quick else 2000)


def group_rows(settings: Settings) -> list[Row]:
    """The rows of `juno-bridge bench --only python`."""
    return [Row(r["group"], "-", 1, r["method"], r["caller"].lower(), r["median_us"], r["p90_us"],
                {"note": r.get("note", "")}) for r in run_bench(quick=settings.is_quick)]


def group_targets(rows: list[Row]) -> list[Target]:
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


def format_table(rows: list[dict]) -> str:
    lines = [f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} "
             f"{platform.python_version()}, numpy {np.__version__}", "",
             f"{'group':<14} {'method':<58} {'caller':<7} {'median us':>10} {'p90 us':>10}  note"]
    for r in rows:
        lines.append(f"{r['group']:<14} {r['method']:<58} {r['caller']:<7} {r['median_us']:>10.1f} "
                     f"{r['p90_us']:>10.1f}  {r['note']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    print(format_table(run_bench(quick=command_line(__doc__, argv).quick)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
