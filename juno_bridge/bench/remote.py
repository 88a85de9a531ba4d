"""Benchmark beyond one machine, on this machine: a Triton server on loopback and Dask workers.

JUNO-sized model (builtin ``juno``: [B, 2, 17612] float32 -> [B, 4]), B = 1 and 64:
  (r1) local juno-bridge Session.run(out=), the reference;
  (r2) a hand-written tritonclient loop with system shared memory (regions registered once; per call:
       input copied into its region, infer, output copied out), the best a user could write by hand;
  (r3) juno-bridge Session("triton://...").run(out=), the same server;
  (r4) (r3) with 8 requests in flight (8 threads on one Session), reported per request;
  (r5) (r3) with 8 run_async calls in flight from one thread (B = 64), reported per request;
the memory of ten opens of the JUNO-sized model sharing one backend session vs shared=False (RSS growth,
each measured in a fresh process); and `juno-bridge run` events/s over the same event files with 1 and 2 Dask
workers (cluster started before timing, each worker's Session opened by a warm-up run).

    python -m juno_bridge.bench.remote [--quick]
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict
from pathlib import Path

import numpy as np

import juno_bridge as jb
from juno_bridge.bench.common import (Row, Settings, Target, async_in_flight, command_line, format_target,
                                      machine_description, side_by_side, threads_per_call, time_calls)
from juno_bridge.demo.models.builtin import builtin_input, builtin_model

IN_FLIGHT = 8
OPENS = 10


def _row(method, batch, caller, timing, note=""):
    return {"group": "remote", "model": "juno", "batch": batch, "method": method, "caller": caller,
            "median_us": timing[0], "p90_us": timing[1], "note": note}


class _HandWrittenLoop:
    """What a user writes with tritonclient alone: two regions registered once, reused every call."""

    def __init__(self, address: str, model: str, batch: int):
        import tritonclient.grpc as grpcclient
        import tritonclient.utils.shared_memory as shm

        self.shm, self.client = shm, grpcclient.InferenceServerClient(address)
        self.x = builtin_input("juno", batch)
        self.y = np.empty((batch, 4), np.float32)
        self.names = [f"handloop{uuid.uuid4().hex[:12]}_{r}" for r in ("in", "out")]
        self.regions = [shm.create_shared_memory_region(n, "/" + n, size, create_only=True)
                        for n, size in zip(self.names, (self.x.nbytes, self.y.nbytes))]
        for n, size in zip(self.names, (self.x.nbytes, self.y.nbytes)):
            self.client.register_system_shared_memory(n, "/" + n, size)
        self.model = model
        self.input = grpcclient.InferInput("pmt", list(self.x.shape), "FP32")
        self.input.set_shared_memory(self.names[0], self.x.nbytes)
        self.output = grpcclient.InferRequestedOutput("y")
        self.output.set_shared_memory(self.names[1], self.y.nbytes)
        self.in_view = shm.get_contents_as_numpy(self.regions[0], np.float32, self.x.shape)
        self.out_view = shm.get_contents_as_numpy(self.regions[1], np.float32, self.y.shape)

    def __call__(self):
        np.copyto(self.in_view, self.x)
        self.client.infer(self.model, [self.input], outputs=[self.output], client_timeout=30)
        np.copyto(self.y, self.out_view)

    def close(self):
        for n, region in zip(self.names, self.regions):
            self.client.unregister_system_shared_memory(n)
            self.shm.destroy_shared_memory_region(region)
        self.client.close()


def _in_flight(session, batch: int, calls_per_thread: int) -> tuple[float, float]:
    """Wall time per request with IN_FLIGHT threads sharing one Session: (per request, per request)."""
    x = builtin_input("juno", batch)

    def work():
        y = np.empty((batch, 4), np.float32)
        for _ in range(calls_per_thread):
            session.run({"pmt": x}, out={"y": y})

    return threads_per_call(work, IN_FLIGHT, calls_per_thread)


def _throughput_rows(remote, batch: int, requests: int, check: np.ndarray, rounds: int) -> list[dict]:
    """(r4) 8 threads calling run vs (r5) 8 run_async in flight from one thread, in interleaved rounds;
    the median round of each."""
    threads, one_thread = [], []
    for _ in range(rounds):
        threads.append(_in_flight(remote, batch, max(5, requests // IN_FLIGHT))[0])
        one_thread.append(async_in_flight(remote, batch, requests, IN_FLIGHT)[0])
    y = remote.run_async({"pmt": builtin_input("juno", batch)}).result()["y"]
    if not np.array_equal(y, check):
        raise AssertionError(f"run_async and local outputs differ at B={batch}")
    rows = []
    for method, samples in ((f"(r4) (r3) with {IN_FLIGHT} requests in flight, per request", threads),
                            (f"(r5) (r3) run_async, {IN_FLIGHT} in flight from 1 thread, per req.", one_thread)):
        samples.sort()
        median = samples[len(samples) // 2]
        rows.append(_row(method, batch, "python", (median, samples[-1]), f"{batch / median * 1e6:,.0f} events/s"))
    return rows


def _open_memory(model: str, shared: bool) -> dict:
    """Run in a fresh process: RSS growth (MB) and the open times (us) of OPENS Sessions of `model`,
    after the runtime was loaded by a built-in tiny model."""
    def rss_mb() -> float:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    warm = jb.Session(str(builtin_model("tiny")), shared=False)
    warm.run({"x": builtin_input("tiny", 1)})
    before = rss_mb()
    sessions, times = [], []
    for _ in range(OPENS):
        t0 = time.perf_counter_ns()
        sessions.append(jb.Session(model, shared=shared, intra_op_threads=1))
        times.append((time.perf_counter_ns() - t0) / 1e3)
    grown = rss_mb() - before
    backends = len({s._stats()["backend_id"] for s in sessions})
    return {"rss_mb": grown, "open_us": times, "backend_sessions": backends}


def memory_rows() -> list[dict]:
    """Ten opens of the JUNO-sized model, shared and shared=False, each in its own process."""
    model = str(builtin_model("juno"))
    rows = []
    for shared in (True, False):
        code = (f"import json; from juno_bridge.bench.remote import _open_memory; "
                f"print(json.dumps(_open_memory({model!r}, {shared})))")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"the shared-session memory probe failed: {done.stderr.strip()[-500:]}")
        probe = json.loads(done.stdout.strip().splitlines()[-1])
        times = sorted(probe["open_us"])
        rows.append({"group": "shared-open", "model": "juno", "batch": 0,
                     "method": f"(m{1 if shared else 2}) {OPENS} opens, {'shared' if shared else 'shared=False'}"
                               f", time per open", "caller": "python",
                     "median_us": times[len(times) // 2], "p90_us": times[int(len(times) * 0.9)],
                     "note": f"RSS +{probe['rss_mb']:.1f} MB, {probe['backend_sessions']} backend session(s), "
                             f"all opens {sum(times) / 1e3:.0f} ms",
                     "rss_mb": probe["rss_mb"], "open_ms": sum(times) / 1e3})
    return rows


def remote_rows(quick: bool) -> list[dict]:
    from juno_bridge.serve import TritonServer

    model = str(builtin_model("juno"))
    rows = []
    with TritonServer([model], names=["juno"], max_batch=64) as server:
        remote = jb.Session(server.url("juno"))
        local = jb.Session(model, intra_op_threads=1)
        for batch in (1, 64):
            n = (60 if quick else 300) if batch > 1 else (300 if quick else 2000)
            x = builtin_input("juno", batch)
            y_local, y_remote = np.empty((batch, 4), np.float32), np.empty((batch, 4), np.float32)
            hand = _HandWrittenLoop(server.address, "juno", batch)
            try:
                timings = side_by_side({
                    "(r1) local juno-bridge Session.run(out=)":
                        lambda k, w: time_calls(lambda: local.run({"pmt": x}, out={"y": y_local}), k, w),
                    "(r2) hand-written tritonclient loop, shared memory": lambda k, w: time_calls(hand, k, w),
                    "(r3) juno-bridge triton:// Session.run(out=)":
                        lambda k, w: time_calls(lambda: remote.run({"pmt": x}, out={"y": y_remote}), k, w),
                }, n, max(10, n // 10))
                hand()
                if not (np.array_equal(y_remote, y_local) and np.array_equal(hand.y, y_local)):
                    raise AssertionError(f"remote and local outputs differ at B={batch}")
            finally:
                hand.close()
            for method, timing in timings.items():
                rows.append(_row(method, batch, "python", timing))
            if batch > 1:
                rows += _throughput_rows(remote, batch, max(4 * IN_FLIGHT, n // 2), y_local, 3 if quick else 5)
            else:
                per_request = _in_flight(remote, batch, max(5, n // (4 * IN_FLIGHT)))
                rows.append(_row(f"(r4) (r3) with {IN_FLIGHT} requests in flight, per request", batch, "python",
                                 per_request, f"{batch / per_request[0] * 1e6:,.0f} events/s"))
        remote.close()
    return rows


def dask_rows(quick: bool) -> list[dict]:
    from dask.distributed import Client, LocalCluster

    from juno_bridge.run import run_files, warm_up

    files, events, rounds = (4, 128, 3) if quick else (8, 256, 5)
    work = Path(tempfile.mkdtemp(prefix="juno-bridge-bench-dask-"))
    model = str(builtin_model("juno"))
    rows = []
    try:
        inputs = []
        for i in range(files):
            path = work / "in" / f"events{i}.npz"
            path.parent.mkdir(exist_ok=True)
            np.savez(path, pmt=builtin_input("juno", events, seed=i))
            inputs.append(str(path))
        clusters = {w: LocalCluster(n_workers=w, threads_per_worker=1, processes=True, dashboard_address=None)
                    for w in (1, 2)}
        try:
            for cluster in clusters.values():
                with Client(cluster) as client:
                    client.run(warm_up, model)  # one Session opened in every worker before timing
            # Interleaved rounds, so a change of load on a shared machine hits both alike; median per config.
            seconds: dict[int, list[float]] = {1: [], 2: []}
            for r in range(rounds):
                for workers, cluster in clusters.items():
                    t0 = time.perf_counter()
                    report = run_files(model, inputs, work / f"out{workers}-{r}", scheduler=cluster.scheduler_address,
                                       batch_size=64, progress=False)
                    seconds[workers].append(time.perf_counter() - t0)
                    if report.failed:
                        raise AssertionError(f"dask bench run failed: {report.summary()}")
                    shutil.rmtree(work / f"out{workers}-{r}", ignore_errors=True)
        finally:
            for cluster in clusters.values():
                cluster.close()
        for workers, times in seconds.items():
            median = sorted(times)[len(times) // 2]
            rate = files * events / median
            rows.append({"group": "dask-run", "model": "juno", "batch": 64,
                         "method": f"juno-bridge run, {workers} Dask worker(s), {files} files x {events} events",
                         "caller": "python", "median_us": median / (files * events) * 1e6,
                         "p90_us": max(times) / (files * events) * 1e6, "note": f"{rate:,.0f} events/s (load average "
                                                         f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)",
                         "events_per_s": rate})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def run_bench(quick: bool = False) -> list[dict]:
    """Rows: group, model, batch, method, caller, median_us, p90_us, note."""
    return remote_rows(quick) + memory_rows() + dask_rows(quick)


def targets(rows: list[dict]) -> list[tuple[str, float | None, float, bool]]:
    """(description, measured ratio, target, higher_is_better)."""
    def median(group, batch, prefix):
        r = next((r for r in rows if r["group"] == group and r["batch"] == batch and r["method"].startswith(prefix)),
                 None)
        return r["median_us"] if r else None

    out = []
    for batch in (1, 64):
        ours, hand = median("remote", batch, "(r3)"), median("remote", batch, "(r2)")
        out.append((f"remote juno B={batch}: (r3)/(r2), juno-bridge vs hand-written tritonclient loop",
                    ours / hand if ours and hand else None, 1.1, False))
    threads, one_thread = median("remote", 64, "(r4)"), median("remote", 64, "(r5)")
    out.append((f"remote juno B=64: throughput of {IN_FLIGHT} run_async in flight from 1 thread (r5) / "
                f"{IN_FLIGHT} threads calling run (r4)", threads / one_thread if threads and one_thread else None,
                1.0, True))
    mem = {r["method"][:4]: r for r in rows if r["group"] == "shared-open"}
    if "(m1)" in mem and "(m2)" in mem:
        out.append((f"shared sessions: RSS growth of {OPENS} opens shared / shared=False "
                     f"({mem['(m1)']['rss_mb']:.1f} MB / {mem['(m2)']['rss_mb']:.1f} MB)",
                     mem["(m1)"]["rss_mb"] / mem["(m2)"]["rss_mb"] if mem["(m2)"]["rss_mb"] > 0 else None,
                     2 / OPENS, False))
        out.append((f"shared sessions: time of {OPENS} opens shared / shared=False",
                     mem["(m1)"]["open_ms"] / mem["(m2)"]["open_ms"], 2 / OPENS, False))
    one = next((r["events_per_s"] for r in rows if r["group"] == "dask-run" and "1 Dask" in r["method"]), None)
    two = next((r["events_per_s"] for r in rows if r["group"] == "dask-run" and "2 Dask" in r["method"]), None)
    out.append(("run: events/s with 2 Dask workers / 1", two / one if one and two else None, 1.8, True))
    return out


def group_rows(settings: Settings) -> list[Row]:
    """The rows of `juno-bridge bench --only remote`: a Triton server on loopback, and Dask workers."""
    return [Row(r["group"], r["model"], r["batch"], r["method"], r["caller"], r["median_us"], r["p90_us"],
                {k: v for k, v in r.items() if k in ("note", "events_per_s", "rss_mb", "open_ms")})
            for r in run_bench(settings.is_quick)]


def group_targets(rows: list[Row]) -> list[Target]:
    return targets([{**asdict(r), **r.extra} for r in rows])


def main(argv=None) -> int:
    rows = run_bench(quick=command_line(__doc__, argv).quick)
    print(f"machine: {machine_description()}\n")
    for r in rows:
        print(f"{r['group']:<9}B={r['batch']:<3} {r['method']:<62} {r['median_us']:>10.1f} us {r['p90_us']:>10.1f}"
              f"  {r['note']}")
    for target in targets(rows):
        print(format_target(*target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
