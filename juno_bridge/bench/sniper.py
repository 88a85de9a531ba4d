"""juno-bridge inside SNiPER, measured (``juno-bridge bench --only sniper``; needs SNIPER_PREFIX and
``make sniper``, else the group says why and is skipped).

Default model (ONNX), toy events, 1 thread, per event:
  (s1) the project's C++ framework host (cpp/tools/framework_host.cpp), batch 1: scatter + run;
  (s2) a SNiPER job: HitsReaderAlg (HDF5 read + scatter) + JunoBridgeAlg, and (s0) the reader alone (the
       event loop only, timed by a first Python algorithm that notes when each event starts; medians over
       events, as (s5)'s): s2 - s0 compared with (s5) a C++ loop of Session::run alone;
  (s3) the C++ -> Python handoff of a [1, 2, 17612] float32 event: the tensor store's numpy view vs
       SNiPER's PyDataStore::set(std::vector<float>) plus the Python side's np.asarray of what it holds;
  (s4) a Python algorithm in SNiPER (SessionAlg, bound once; s4 - s0) vs a plain Python loop (bound run);
  (s6) a multi-task job: two tasks in two Python threads sharing one backend session, against one task
       (whole runs, wall time over the events), with ReleaseGIL on (the default) and off; and (s6d, s6e)
       one and two tasks on C++ threads of jb-sniper-tasks sharing one JunoBridgeSvc;
  (s7) where JunoBridgeAlg's time goes, in C++ tasks (jb-sniper-tasks), medians over events: over one fixed
       event and a model of next to no work (a slice of pmt): SNiPER's loop alone, one empty algorithm
       (SNiPER's own cost per algorithm), Session::run alone in an algorithm, JunoBridgeAlg; and over the
       reader's events with the default model, Session::run alone and JunoBridgeAlg after the reader.
The job runs in its own process (SNiPER's Python package and libraries come from SNIPER_PREFIX).
"""
from __future__ import annotations

from dataclasses import asdict

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from juno_bridge.bench.common import Row, Settings, Target

JOB = r'''
import json, sys, time
import numpy as np
import Sniper
import SniperPython  # noqa: F401  (PyDataStoreSvc)
import juno_bridge.sniper as jbs
from juno_bridge import _sniper

events, n, model, reps = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
handoff = {}

class Handoff(Sniper.PyAlgBase):
    """At the first event: the reader's pmt seen from Python, both ways, `reps` times each."""
    def initialize(self):
        self.store, self.done = jbs.store(self), False; return True
    def execute(self):
        if self.done: return True
        self.done = True
        start = time.perf_counter()
        for _ in range(reps):
            a = self.store["pmt"]
        handoff["store_s"] = (time.perf_counter() - start) / reps
        elements = a.size
        handoff["set_s"] = _sniper.time_pydatastore_set(self.getParent(), "DataStore", "pmt", elements, reps)
        data = self.get("DataStore").data()
        start = time.perf_counter()
        for _ in range(reps):
            b = np.asarray(data["pmt"], np.float32)
        handoff["asarray_s"] = (time.perf_counter() - start) / reps
        return True
    def finalize(self): return True

class Clock(Sniper.PyAlgBase):
    """First in the task: the time each event starts (the loop alone, without opening files and models)."""
    def __init__(self, name):
        super().__init__(name); self.starts = []
    def initialize(self): return True
    def execute(self): self.starts.append(time.perf_counter()); return True
    def finalize(self): return True

def job(reco=False, python=False, measure_handoff=False):
    task = Sniper.Task("task"); task.setEvtMax(-1); task.setLogLevel(4)
    keep = [Clock("clock")]  # SNiPER holds plain pointers to Python algorithms: they must outlive the run
    task.addAlg(keep[0])
    if measure_handoff:
        task.createSvc("PyDataStoreSvc/DataStore")
    reader = task.createAlg("HitsReaderAlg/reader"); reader.property("Files").set([events])
    if reco:
        task.createAlg("JunoBridgeAlg/reco").property("Model").set(model)
    if python:
        keep.append(jbs.SessionAlg("pyreco", model, intra_op_threads=1)); task.addAlg(keep[-1])
    if measure_handoff:
        keep.append(Handoff("handoff")); task.addAlg(keep[-1])
    assert task.run(), "the job failed"
    starts = keep[0].starts  # n events start, then the reader's stop at the (n + 1)-th
    times = np.diff(starts[1:-1])
    return float(np.median(times)), float(times.mean())

def job_whole():
    """One task (reader + JunoBridgeAlg), timed as two_tasks is: wall time of task.run() over n events."""
    task = Sniper.Task("task"); task.setEvtMax(-1); task.setLogLevel(4)
    task.createAlg("HitsReaderAlg/reader").property("Files").set([events])
    task.createAlg("JunoBridgeAlg/reco").property("Model").set(model)
    start = time.perf_counter()
    jbs.run(task)
    return (time.perf_counter() - start) / n

def per_event(**kind):
    """Seconds per event: the median (compared with the C++ loop's median) and the mean, the least of three jobs."""
    runs = [job(**kind) for _ in range(3)]
    return min(r[0] for r in runs), min(r[1] for r in runs)

def two_tasks(release):
    """Two tasks (reader + JunoBridgeAlg, one shared backend session) in two Python threads: seconds per
    event of the pair (wall time over both tasks' events)."""
    import threading
    tasks = []
    for t in range(2):
        task = Sniper.Task(f"task{t}"); task.setEvtMax(-1); task.setLogLevel(4)
        task.createAlg("HitsReaderAlg/reader").property("Files").set([events])
        reco = task.createAlg("JunoBridgeAlg/reco"); reco.property("Model").set(model)
        reco.property("ReleaseGIL").set(release)
        tasks.append(task)
    threads = [threading.Thread(target=jbs.run, args=(task,)) for task in tasks]
    start = time.perf_counter()
    [th.start() for th in threads]; [th.join() for th in threads]
    return (time.perf_counter() - start) / (2 * n)

out = {}
out["reader"], out["reader_mean"] = per_event()
out["reco"], out["reco_mean"] = per_event(reco=True)
out["python_median"], out["python"] = per_event(python=True)  # the mean, as the plain Python loop's
out["reco_whole"] = min(job_whole() for _ in range(3))
out["two_tasks"] = min(two_tasks(True) for _ in range(3))
out["two_tasks_gil"] = min(two_tasks(False) for _ in range(3))
job(measure_handoff=True)
out.update(handoff)
print("RESULT " + json.dumps(out))
'''


def _slice_model(directory: Path) -> str:
    """pmt [B, 2, 17612] -> vertex = pmt[:, :, :4], energy = its sum: JunoBridgeAlg's two outputs from next to
    no work, so what is left of an event's time is the framework's and ours."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from juno_bridge.demo.models.builtin import IR_VERSION, OPSET

    def ints(name, values):
        return numpy_helper.from_array(np.array(values, np.int64), name)

    graph = helper.make_graph(
        [helper.make_node("Slice", ["pmt", "starts", "ends", "axes"], ["vertex"]),
         helper.make_node("ReduceSum", ["vertex", "axes"], ["energy"], keepdims=0)], "pmt_slice",
        [helper.make_tensor_value_info("pmt", TensorProto.FLOAT, ["B", 2, 17612])],
        [helper.make_tensor_value_info("vertex", TensorProto.FLOAT, ["B", 2, 4]),
         helper.make_tensor_value_info("energy", TensorProto.FLOAT, ["B"])],
        [ints("starts", [0, 0]), ints("ends", [2, 4]), ints("axes", [1, 2])])
    model = helper.make_model(graph, producer_name="juno-bridge", ir_version=IR_VERSION,
                              opset_imports=[helper.make_opsetid("", OPSET)])
    path = directory / "pmt_slice.onnx"
    onnx.save(model, str(path))
    return str(path)


def _tasks(events: Path, model: str, *args: str) -> dict:
    """One run of jb-sniper-tasks (C++ tasks on threads of their own): its JSON line."""
    from juno_bridge import paths

    proc = subprocess.run([str(paths.program("jb-sniper-tasks")), str(events), model, *args],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"jb-sniper-tasks {' '.join(args)} failed: {(proc.stderr or proc.stdout)[-500:]}")
    return json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])  # SNiPER's banner


def _default_model():
    from juno_bridge.demo.models import default

    return str(default.onnx_model())


def _row(method, caller, seconds, note=""):
    return {"group": "sniper", "model": "default", "batch": 1, "method": method, "caller": caller,
            "median_us": seconds * 1e6, "p90_us": seconds * 1e6, "note": note}


def run_bench(quick: bool = False) -> list[dict]:
    import numpy as np

    import juno_bridge as jb
    from juno_bridge import paths
    from juno_bridge._hits import NUM_LPMT
    from juno_bridge.demo import toymc
    from juno_bridge.demo.comparison import write_events_file

    prefix = os.environ.get("SNIPER_PREFIX", "")
    if not prefix:
        raise RuntimeError("SNIPER_PREFIX is not set (the SNiPER install prefix); `make sniper` builds the package")
    if not (Path(jb.__file__).parent / "lib" / "libJunoBridgeSniper.so").exists():
        raise RuntimeError("the SNiPER package is not built: make sniper SNIPER_PREFIX=...")
    n = 300 if quick else 2000
    model = _default_model()
    events = toymc.generate(n, seed=3)
    with tempfile.TemporaryDirectory(prefix="jb-bench-sniper-") as tmp:
        h5, raw = Path(tmp) / "events.h5", Path(tmp) / "events.bin"
        events.save(h5)
        write_events_file(events, raw)
        host = paths.bin_dir() / "jb-framework-host"
        runs = [json.loads(subprocess.run([str(host), model, str(raw), str(Path(tmp) / "out.f32"), "1", "1"],
                                          check=True, capture_output=True, text=True).stdout) for _ in range(3)]
        host_s = min(r["seconds"] for r in runs) / n
        loop = json.loads(subprocess.run([str(paths.bin_dir() / "jb-bench-loop"), model, "1", str(n), "50"], check=True,
                                         capture_output=True, text=True).stdout.strip().splitlines()[-1])
        env = dict(os.environ,
                   PYTHONPATH=os.pathsep.join(filter(None, [f"{prefix}/python", os.environ.get("PYTHONPATH")])),
                   LD_LIBRARY_PATH=os.pathsep.join(filter(None, [f"{prefix}/lib", os.environ.get("LD_LIBRARY_PATH")])))
        proc = subprocess.run([sys.executable, "-c", JOB, str(h5), str(n), model, "200" if quick else "1000"],
                              env=env, capture_output=True, text=True, cwd=tmp)  # not a source tree's cwd
        lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"the SNiPER job failed: {(proc.stderr or proc.stdout)[-500:]}")
        r = json.loads(lines[-1][7:])
        # (s7): one fixed event, medians over events; each kind three times, interleaved, the least kept.
        fixed, costs = ["--fixed", "3000" if quick else "20000", "--repeat", "3"], {}
        tiny = _slice_model(Path(tmp))
        for _ in range(3):
            for kind in ("none", "empty", "bare", "reco"):
                us = _tasks(h5, tiny, "--alg", kind, *fixed)["event_us"]
                costs[kind] = min(costs.get(kind, us), us)
            for kind in ("bare", "reco"):  # (s7e, s7f): the default model on the reader's events
                us = _tasks(h5, model, "--alg", kind)["event_us"]
                costs["events_" + kind] = min(costs.get("events_" + kind, us), us)
        # (s6d, s6e): one and two tasks on C++ threads (events/s from wall time), one shared JunoBridgeSvc.
        shared = ["--service", "--async-threads", "0"]
        one = min(_tasks(h5, model, "--tasks", "1", *shared)["seconds"] for _ in range(3)) / n
        two = min(_tasks(h5, model, "--tasks", "2", *shared)["seconds"] for _ in range(3)) / (2 * n)
    by_s0 = 1e6 * r["reader"]
    # The plain Python loop of (s4): the same events, scatter + bound run per event.
    session = jb.Session(model, intra_op_threads=1)
    pmt = np.zeros((1, 2, NUM_LPMT), np.float32)
    first = session.run({"pmt": pmt})
    binding = session.bind({"pmt": pmt}, out={k: np.empty_like(v) for k, v in first.items()})
    start = time.perf_counter()
    for i in range(n):
        jb.scatter_hits(*events.hits(i), out=pmt[0])
        binding.run()
    plain_s = (time.perf_counter() - start) / n
    return [
        _row("(s1) C++ framework host, scatter + run", "c++", host_s),
        _row("(s0) SNiPER HitsReaderAlg alone (HDF5 read + scatter)", "c++", r["reader"]),
        _row("(s2) SNiPER HitsReaderAlg + JunoBridgeAlg", "c++", r["reco"],
             f"JunoBridgeAlg alone {1e6 * (r['reco'] - r['reader']):.1f} us (medians; means: "
             f"{1e6 * (r['reco_mean'] - r['reader_mean']):.1f} us)"),
        _row("(s5) C++ loop of Session::run alone (jb-bench-loop), median", "c++", loop["median_us"] * 1e-6),
        _row("(s3a) store -> numpy view of [1, 2, 17612]", "python", r["store_s"]),
        _row("(s3b) PyDataStore::set + np.asarray", "python", r["set_s"] + r["asarray_s"],
             f"set {1e6 * r['set_s']:.0f} us + asarray {1e6 * r['asarray_s']:.0f} us"),
        _row("(s4a) SNiPER HitsReaderAlg + SessionAlg (Python)", "python", r["python"]),
        _row("(s4b) plain Python loop: scatter + bound run", "python", plain_s),
        _row("(s6a) one task, reader + JunoBridgeAlg, whole run", "c++", r["reco_whole"]),
        _row("(s6b) two tasks in two threads, one shared session", "c++", r["two_tasks"],
             f"{r['reco_whole'] / r['two_tasks']:.2f}x one task's events/s"),
        _row("(s6c) two tasks in two threads, ReleaseGIL=false", "c++", r["two_tasks_gil"],
             f"{r['reco_whole'] / r['two_tasks_gil']:.2f}x one task's events/s"),
        _row("(s6d) one C++ task on a thread (jb-sniper-tasks), whole run", "c++", one),
        _row("(s6e) two C++ tasks on two threads, one JunoBridgeSvc", "c++", two,
             f"{one / two:.2f}x one task's events/s"),
        _row("(s7a) C++ task, fixed event: SNiPER's loop alone", "c++", costs["none"] * 1e-6),
        _row("(s7b) ... + an empty algorithm", "c++", costs["empty"] * 1e-6,
             f"SNiPER's own cost per algorithm {costs['empty'] - costs['none']:.2f} us"),
        _row("(s7c) ... + Session::run alone (pmt slice model)", "c++", costs["bare"] * 1e-6),
        _row("(s7d) ... + JunoBridgeAlg (pmt slice model)", "c++", costs["reco"] * 1e-6,
             f"JunoBridgeAlg's own cost {costs['reco'] - costs['bare']:.2f} us"),
        _row("(s7e) C++ task, HitsReaderAlg + Session::run alone", "c++", costs["events_bare"] * 1e-6,
             f"the run after the reader: {costs['events_bare'] - by_s0:.0f} us over the reader (s0)"),
        _row("(s7f) C++ task, HitsReaderAlg + JunoBridgeAlg", "c++", costs["events_reco"] * 1e-6,
             f"JunoBridgeAlg's own cost {costs['events_reco'] - costs['events_bare']:.1f} us"),
    ]


def targets(rows: list[dict]) -> list[tuple[str, float | None, float, bool]]:
    by = {r["method"].split(")")[0] + ")": r["median_us"] for r in rows}
    overhead = by["(s2)"] - by["(s0)"] - by["(s5)"]
    own, own_events = by["(s7d)"] - by["(s7c)"], by["(s7f)"] - by["(s7e)"]
    return [
        ("(s2 - s0) - (s5), us per event: the model after the reader in a job against a C++ loop on one synthetic "
         "input (caches and data, not JunoBridgeAlg: compare s7e with s5)", overhead, None, False),
        ("JunoBridgeAlg minus Session::run alone in the same C++ task, one fixed event (s7d - s7c), us per event",
         own, 2.0, False),
        ("JunoBridgeAlg minus Session::run alone in the same C++ task, the reader's events (s7f - s7e), us per event "
         "(the model's own spread is larger than the target: s7d - s7c judges)", own_events, None, False),
        ("SNiPER job (reader + JunoBridgeAlg) vs the C++ framework host (s2 / s1)", by["(s2)"] / by["(s1)"], 1.1,
         False),
        ("store handoff vs PyDataStore::set, x faster", by["(s3b)"] / by["(s3a)"], 100.0, True),
        ("Python algorithm in SNiPER vs plain Python loop, ratio", by["(s4a)"] / by["(s4b)"], 1.1, False),
        ("two tasks in two threads vs one task, events/s, x (2 cores: at most 2)", by["(s6a)"] / by["(s6b)"], 1.5,
         True),
        ("two C++ tasks, one JunoBridgeSvc, vs one task, events/s, x (s6d / s6e)", by["(s6d)"] / by["(s6e)"], 1.7,
         True),
    ]


def group_rows(settings: Settings) -> list[Row]:
    """The rows of `juno-bridge bench --only sniper`."""
    return [Row(*(r[k] for k in ("group", "model", "batch", "method", "caller", "median_us", "p90_us")),
                {"note": r["note"]}) for r in run_bench(settings.is_quick)]


def group_targets(rows: list[Row]) -> list[Target]:
    return targets([asdict(r) for r in rows])


if __name__ == "__main__":
    for row in run_bench("--quick" in sys.argv):
        print(f"{row['method']:<60} {row['median_us']:10.1f} us  {row['note']}")
