"""The torch rows of the benchmark: five ways to run the same PyTorch model, side by side in one run.

    (a) torch nn.Module from Python (torch.from_numpy in, .numpy() out)
    (b) torch._inductor.aoti_load_package from Python, the same .pt2
    (c) juno-bridge .pt2 from Python (outputs written in place)
    (d) juno-bridge .pt2 from a C++ loop (cpp/tools/bench_torch_loop.cpp, built against this package)
    (e) juno-bridge .pt (TorchScript) from Python

Two models: "tiny" ([B, 8] -> Linear -> [B, 4]) measures per-call overhead; "juno" ([B, 2, 17612]
-> flatten -> Linear 64 -> ReLU -> Linear 4) a JUNO-sized event batch. One intra-op thread
everywhere. The Python methods are timed call by call in interleaved rounds, so drift of the machine
hits every method alike. Run: python -m juno_bridge.bench.torch [--quick]
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

import juno_bridge as jb
from juno_bridge import paths
from juno_bridge._hits import NUM_LPMT
from juno_bridge.bench.common import Row, Settings, Target, command_line, find_row, ratio_table
from juno_bridge.torch_export import export_torch

METHODS = {"a": "(a) torch nn.Module", "b": "(b) aoti_load_package", "c": "(c) juno-bridge .pt2",
           "d": "(d) juno-bridge .pt2", "e": "(e) juno-bridge .pt"}


class TinyModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(8, 4)

    def forward(self, x):
        return self.linear(x)


class JunoModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2 * NUM_LPMT, 64), torch.nn.ReLU(),
                                       torch.nn.Linear(64, 4))

    def forward(self, pmt):
        return self.net(pmt)


def _models(workdir: Path, groups) -> dict:
    """group -> (module, input shape without batch, .pt2 path, .pt path); exports are kept in workdir."""
    torch.manual_seed(0)
    out = {}
    for group, module, shape in (("tiny", TinyModel(), (8,)), ("juno", JunoModel(), (2, NUM_LPMT))):
        if group not in groups:
            continue
        module.eval()
        paths = []
        for suffix in (".pt2", ".pt"):
            path = workdir / f"{group}{suffix}"
            weights = workdir / f"{group}.weights"
            if not path.exists() or not weights.exists():
                export_torch(module, torch.randn(4, *shape), path, input_names=["x"], output_names=["y"])
            paths.append(path)
        if weights.exists():
            module.load_state_dict(torch.load(weights))
        else:
            torch.save(module.state_dict(), weights)
        out[group] = (module, shape, *paths)
    return out


def _build_loop(workdir: Path) -> Path | None:
    """Compiles the C++ loop against the installed package; None when no compiler is at hand."""
    pkg = paths.PACKAGE_DIR
    # The source tree's copy when running from a checkout, else the one the build installed.
    candidates = [pkg.parent / "cpp" / folder / "bench_torch_loop.cpp" for folder in ("tools",)]
    source = next((c for c in candidates if c.exists()), pkg / "examples" / "bench_torch_loop.cpp")
    exe = workdir / "bench_torch_loop"
    if not source.exists() or shutil.which("g++") is None:
        print(f"note: row (d) skipped: {'no g++' if source.exists() else f'{source} is missing'}", flush=True)
        return None
    subprocess.run(["g++", "-std=c++17", "-O2", "-g0", str(source), f"-I{pkg / 'include'}", f"-L{pkg / 'lib'}",
                    "-ljuno_bridge", f"-Wl,-rpath,{pkg / 'lib'}", "-o", str(exe)], check=True)
    return exe


def _time_interleaved(calls: dict, rounds: int, per_round: int, warmup: int) -> dict:
    samples = {k: [] for k in calls}
    for f in calls.values():
        for _ in range(warmup):
            f()
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for k, f in calls.items():
            s = samples[k]
            for _ in range(per_round):
                t0 = clock()
                f()
                s.append(clock() - t0)
    return {k: (float(np.median(v)) / 1e3, float(np.percentile(v, 90)) / 1e3) for k, v in samples.items()}


def run_bench(batch_sizes=(1, 64), quick: bool = False, workdir: str | os.PathLike | None = None,
              groups=("tiny", "juno")) -> list[dict]:
    """Measures (a)-(e) for the models in `groups` and every batch size; one dict per row.
    Exported models and the C++ loop are kept in `workdir` (default: a cache under ~/.cache)."""
    workdir = Path(workdir or Path.home() / ".cache" / "juno_bridge" / f"bench_torch-{torch.__version__}")
    workdir.mkdir(parents=True, exist_ok=True)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)  # torch's pool is process-wide: this also holds for the juno-bridge sessions
    try:
        models = _models(workdir, groups)
        loop = _build_loop(workdir)
        rows = []
        for group, (module, shape, pt2, pt) in models.items():
            aoti = torch._inductor.aoti_load_package(str(pt2))
            s_pt2 = jb.Session(pt2, intra_op_threads=1)
            s_pt = jb.Session(pt, intra_op_threads=1)
            for batch in batch_sizes:
                x = np.random.default_rng(batch).standard_normal((batch, *shape)).astype(np.float32)
                y2, ye = np.empty((batch, 4), np.float32), np.empty((batch, 4), np.float32)

                def a():
                    with torch.inference_mode():
                        return module(torch.from_numpy(x)).numpy()

                def b():
                    with torch.inference_mode():
                        return aoti(torch.from_numpy(x)).numpy()

                calls = {"a": a, "b": b,
                         "c": lambda: s_pt2.run({"x": x}, out={"y": y2}),
                         "e": lambda: s_pt.run({"x": x}, out={"y": ye})}
                want = a()
                for k in ("b",):
                    np.testing.assert_allclose(calls[k](), want, rtol=1e-4, atol=1e-5)
                for k, y in (("c", y2), ("e", ye)):
                    calls[k]()
                    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-5)
                heavy = group == "juno" and batch > 8
                per_round = (2 if quick else 5) if heavy else (20 if quick else 200)
                timings = _time_interleaved(calls, rounds=3 if quick else 10, per_round=per_round,
                                            warmup=3 if heavy else 50)
                if loop is not None:
                    n = per_round * (3 if quick else 10)
                    out = subprocess.run([str(loop), str(pt2), str(batch), str(n), str(3 if heavy else 50)],
                                         check=True, capture_output=True, text=True).stdout
                    result = json.loads(out)
                    timings["d"] = (result["median_us"], result["p90_us"])
                for k in "abcde":
                    if k in timings:
                        rows.append({"group": group, "batch": batch, "method": METHODS[k],
                                     "caller": "c++" if k == "d" else "python",
                                     "median_us": timings[k][0], "p90_us": timings[k][1]})
        return rows
    finally:
        torch.set_num_threads(threads_before)


def format_table(rows: list[dict]) -> str:
    """The rows with, per model and batch, each method's ratio to the fastest torch-only path (a, b)."""
    return "\n".join([f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
                      f"{os.cpu_count()} CPUs, 1 intra-op thread", *ratio_table(rows, "group", "torch", 26)])


def group_rows(settings: Settings) -> list[Row]:
    """The rows of `juno-bridge bench --only torch`."""
    return [Row("torch", r["group"], r["batch"], r["method"], r["caller"].lower(), r["median_us"], r["p90_us"])
            for r in run_bench(batch_sizes=settings.batches, quick=settings.is_quick, groups=settings.models)]


def group_targets(rows: list[Row]) -> list[Target]:
    targets = []
    for batch in (1, 64):
        a, c = find_row(rows, "tiny", batch, "(a)"), find_row(rows, "tiny", batch, "(c)")
        targets.append((f"torch tiny B={batch}: (a)/(c), juno-bridge .pt2 vs nn.Module from Python",
                        a.median_us / c.median_us if a and c else None, 2.5, True))
    native = [r for r in rows if r.model == "juno" and r.batch == 64 and r.method[:3] in ("(a)", "(b)")]
    best = min((r.median_us for r in native), default=None)
    for label in ("(c)", "(d)", "(e)"):
        r = find_row(rows, "juno", 64, label)
        targets.append((f"torch juno B=64: {label} / fastest torch path",
                        r.median_us / best if r and best else None, 1.05, False))
    return targets


def main(argv=None) -> None:
    args = command_line(__doc__, argv)
    print(format_table(run_bench(args.batch, quick=args.quick)))


if __name__ == "__main__":
    main()
