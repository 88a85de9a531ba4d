"""JunoBridgeAlg, HitsReaderAlg and the tensor store in real SNiPER jobs (subprocesses)."""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from helpers.sniper_env import LIBRARY, job_env, plain_session

N_EVENTS = 12


def reco_job(model: str, events, keys: list[str], extra: str = "") -> str:
    return f'''
        task = Sniper.Task("task"); task.setEvtMax(-1)
        reader = task.createAlg("HitsReaderAlg/reader"); reader.property("Files").set([{str(events)!r}])
        reco = task.createAlg("JunoBridgeAlg/reco"); reco.property("Model").set({model!r})
        {extra}
        collect = Collector("collect", {keys!r}); task.addAlg(collect)
        ok = task.run()
        emit(ok=ok, **{{k: v.tolist() for k, v in collect.stacked().items()}})
    '''


@pytest.mark.parametrize("backend", ["onnx", "default", "pt2", "pt", "savedmodel", "python"])
def test_every_backend_matches_plain_python(backend, models, events, dense_events, run_job):
    if f"{backend}_error" in models or (backend in ("pt2", "pt") and "torch_error" in models):
        pytest.fail(f"could not build the {backend} model: {models.get(backend + '_error') or models['torch_error']}")
    model = "default" if backend == "default" else models[backend]  # "default": the package's default model
    keys = ["energy"] if backend == "savedmodel" else ["vertex", "energy"]
    job = run_job(reco_job(model, events, keys))
    assert job.result and job.result["ok"] and job.rc == 0, job  # rc: the process also ends cleanly
    assert f"events processed {N_EVENTS}" in job.output, job
    expected = plain_session(model, dense_events)
    for k in keys:
        got = np.asarray(job.result[k], np.float32)
        assert got.shape == expected[k].shape
        if backend == "python":  # the default model's torch module: torch's CPU kernels sum in an order
            np.testing.assert_allclose(got, expected[k], rtol=1e-5, atol=1e-5)  # that follows the batch size
        else:
            np.testing.assert_array_equal(got, expected[k])


def test_cpp_python_cpp_through_the_store_without_copies(models, events, run_job):
    job = run_job(f'''
        class Middle(Sniper.PyAlgBase):
            """Reads the C++ reader's pmt, makes a tensor for the C++ JunoBridgeAlg, reads its outputs."""
            def __init__(self, name):
                super().__init__(name); self.seen = []
            def initialize(self):
                self.store = jbs.store(self); return True
            def execute(self):
                pmt = self.store["pmt"]
                mine = self.store.create("pmt_py", pmt.shape, pmt.dtype)
                mine[...] = pmt
                try:
                    pmt[0, 0, 0] = 1.0
                    readonly = False
                except ValueError:
                    readonly = True
                self.seen.append(dict(pmt=pmt.__array_interface__["data"][0], pmt_cpp=self.store.address("pmt"),
                                      readonly=readonly, writable_mine=bool(mine.flags.writeable),
                                      mine=mine.__array_interface__["data"][0], mine_cpp=self.store.address("pmt_py"),
                                      aligned=mine.__array_interface__["data"][0] % 64 == 0))
                return True
            def finalize(self): return True

        class After(Sniper.PyAlgBase):
            def __init__(self, name, reco):
                super().__init__(name); self.reco, self.seen, self.kept = reco, [], None
            def initialize(self):
                self.store = jbs.store(self); return True
            def execute(self):
                v = self.store["vertex"]
                self.kept = v
                self.seen.append(dict(read=jbs.input_addresses(self.reco)[0], vertex=v.__array_interface__["data"][0],
                                      vertex_cpp=self.store.address("vertex"), readonly=not v.flags.writeable))
                self.last = np.array(v)
                return True
            def finalize(self): return True

        task = Sniper.Task("task"); task.setEvtMax(-1)
        reader = task.createAlg("HitsReaderAlg/reader"); reader.property("Files").set([{str(events)!r}])
        middle = Middle("middle"); task.addAlg(middle)
        reco = task.createAlg("JunoBridgeAlg/reco"); reco.property("Model").set({models["onnx"]!r})
        reco.property("Inputs").set({{"pmt": "pmt_py"}})
        after = After("after", reco); task.addAlg(after)
        st = jbs.store(task)
        ok = task.run()
        try:
            st["vertex"]
            gone = ""
        except Exception as err:
            gone = str(err)
        emit(ok=ok, middle=middle.seen, after=after.seen, kept_equal=bool(np.array_equal(after.kept, after.last)),
             gone=gone)
    ''')
    assert job.result and job.result["ok"], job
    middle, after = job.result["middle"], job.result["after"]
    assert len(middle) == len(after) == N_EVENTS
    for m, a in zip(middle, after):
        assert m["pmt"] == m["pmt_cpp"] and m["readonly"]        # C++ -> Python: the reader's memory, read-only
        assert m["mine"] == m["mine_cpp"] and m["writable_mine"] and m["aligned"]
        assert a["read"] == m["mine"]                             # Python -> C++: the runtime read Python's tensor
        assert a["vertex"] == a["vertex_cpp"] and a["readonly"]   # C++ outputs in store memory
    assert len({m["pmt"] for m in middle}) == 1                   # stable addresses across events
    assert len({m["mine"] for m in middle}) == 1
    assert len({a["vertex"] for a in after}) == 1
    assert job.result["kept_equal"]                               # an array kept past the task: live memory
    assert "is gone" in job.result["gone"] and "finalized" in job.result["gone"]


def test_session_alg_runs_a_session_on_store_tensors(models, events, dense_events, run_job):
    job = run_job(f'''
        task = Sniper.Task("task"); task.setEvtMax(-1)
        reader = task.createAlg("HitsReaderAlg/reader"); reader.property("Files").set([{str(events)!r}])
        pyreco = jbs.SessionAlg("pyreco", {models["onnx"]!r}, outputs={{"vertex": "py_vertex", "energy": "py_energy"}})
        task.addAlg(pyreco)
        collect = Collector("collect", ["py_vertex", "py_energy"]); task.addAlg(collect)
        addresses = []
        class Probe(Sniper.PyAlgBase):
            def initialize(self): self.store = jbs.store(self); return True
            def execute(self):
                addresses.append(self.store["py_vertex"].__array_interface__["data"][0]); return True
            def finalize(self): return True
        probe = Probe("probe"); task.addAlg(probe)  # SNiPER holds a plain pointer: keep the object
        ok = task.run()
        emit(ok=ok, addresses=addresses, **{{k: v.tolist() for k, v in collect.stacked().items()}})
    ''')
    assert job.result and job.result["ok"], job
    expected = plain_session(models["onnx"], dense_events)
    np.testing.assert_array_equal(np.asarray(job.result["py_vertex"], np.float32), expected["vertex"])
    np.testing.assert_array_equal(np.asarray(job.result["py_energy"], np.float32), expected["energy"])
    assert len(set(job.result["addresses"])) == 1  # bound once: the outputs stay where they are


def test_the_gil_is_released_during_task_run(models, events, run_job):
    job = run_job(f'''
        def ticks_during_run(release):
            task = Sniper.Task("task"); task.setEvtMax(-1)
            reader = task.createAlg("HitsReaderAlg/reader"); reader.property("Files").set([{str(events)!r}] * 40)
            reco = task.createAlg("JunoBridgeAlg/reco"); reco.property("Model").set({models["onnx"]!r})
            reco.property("ReleaseGIL").set(release)
            count, stop = [0], threading.Event()
            def tick():
                while not stop.is_set():
                    time.sleep(0.001); count[0] += 1
            t = threading.Thread(target=tick); t.start()
            start = time.perf_counter(); ok = task.run(); seconds = time.perf_counter() - start
            stop.set(); t.join()
            return ok, count[0], seconds
        held = ticks_during_run(False)
        released = ticks_during_run(True)
        emit(held=held, released=released)
    ''')
    assert job.result, job
    (ok_h, ticks_h, _), (ok_r, ticks_r, _) = job.result["held"], job.result["released"]
    assert ok_h and ok_r, job
    # Held: SNiPER's loop never lets the ticker in; released: it runs through the job.
    assert ticks_r >= 20 and ticks_r > 5 * max(ticks_h, 1), job.result


@pytest.mark.parametrize("case,message", [
    ("missing_model", "model file '/nonexistent/vertex.onnx' does not exist"),
    ("wrong_key", "which the tensor store lacks"),
    ("unknown_input", "which the model does not have"),
    ("wrong_shape", "pmt"),
    ("staging_on_cpu", "option staging=pinned copies host arrays through pinned memory"),
])
def test_errors_end_the_job_with_a_clear_message(case, message, models, events, run_job):
    model = "/nonexistent/vertex.onnx" if case == "missing_model" else models["onnx"]
    extra = {
        "missing_model": "",
        "wrong_key": 'reco.property("Inputs").set({"pmt": "no_such_key"})',
        "unknown_input": 'reco.property("Inputs").set({"hits": "pmt"})',
        "wrong_shape": 'reco.property("Inputs").set({"pmt": "bad"})',
        "staging_on_cpu": 'reco.property("Staging").set("pinned")',  # the CPU provider: nothing to stage for
    }[case]
    job = run_job(f'''
        class Bad(Sniper.PyAlgBase):
            def initialize(self): self.store = jbs.store(self); return True
            def execute(self): self.store.create("bad", (1, 3, 17612), "float32"); return True
            def finalize(self): return True
        task = Sniper.Task("task"); task.setEvtMax(-1)
        reader = task.createAlg("HitsReaderAlg/reader"); reader.property("Files").set([{str(events)!r}])
        bad = Bad("bad"); task.addAlg(bad)
        reco = task.createAlg("JunoBridgeAlg/reco"); reco.property("Model").set({model!r})
        {extra}
        ok = task.run()
        emit(ok=ok)
    ''')
    assert job.rc == 0 and job.result is not None, job  # no crash: the script goes on after task.run()
    assert job.result["ok"] is False, job
    errors = [line for line in job.output.splitlines() if "reco" in line and "ERROR" in line.upper()]
    assert any(message in line for line in errors), job
    if case == "wrong_shape":
        assert any("[1, 3, 17612]" in line and "17612" in line for line in errors), job


def test_hits_reader_reports_a_missing_file(run_job, tmp_path):
    job = run_job(f'''
        task = Sniper.Task("task"); task.setEvtMax(-1)
        reader = task.createAlg("HitsReaderAlg/reader"); reader.property("Files").set([{str(tmp_path / "no.h5")!r}])
        emit(ok=task.run())
    ''')
    assert job.result == {"ok": False}, job
    # at initialize, before any event: the error line is the reader's initialize
    lines = job.output.splitlines()
    assert any("reader.initialize" in line and "cannot open it as HDF5" in line for line in lines), job


def test_json_job_with_a_python_model_uses_the_environment_first(models, events, tmp_path):
    """sniper.exe job.json: no Python in the process until the python plugin starts one."""
    out = tmp_path / "probe.json"
    job = {
        "sniper": {"LoadDlls": [str(LIBRARY)], "LogLevel": 3},
        "identifier": "Task/task",
        "properties": {"EvtMax": -1},
        "services": [],
        "algorithms": [
            {"identifier": "HitsReaderAlg/reader", "properties": {"Files": [str(events)]}},
            {"identifier": "JunoBridgeAlg/reco", "properties": {"Model": "python:sniper_probe:reconstruct"}},
        ],
    }
    (tmp_path / "job.json").write_text(json.dumps(job))
    env = job_env()
    env["SNIPER_PROBE_OUT"] = str(out)
    proc = subprocess.run(["sniper.exe", str(tmp_path / "job.json")], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "events processed 12" in proc.stdout + proc.stderr
    probe = json.loads(out.read_text())
    assert probe["events"] == 12
    site = [p for p in probe["path"] if p.endswith(("site-packages", "dist-packages"))]
    assert site and site[0] == probe["site"], probe["path"]      # the environment's site-packages first
    assert probe["numpy"].startswith(probe["site"]), probe["numpy"]


def test_two_tasks_in_two_threads_share_one_session(models, events, dense_events, run_job):
    """A multi-task job: two tasks (ReleaseGIL on, the default) in two Python threads, one backend session
    (same model and options), each task's results those of plain Python; the job script reads the sharing
    with session_stats and the log says it at initialize."""
    job = run_job(f'''
        class Stats(Sniper.PyAlgBase):
            def __init__(self, name, reco):
                super().__init__(name); self.reco, self.seen = reco, []
            def initialize(self): return True
            def execute(self): self.seen.append(jbs.session_stats(self.reco)); return True
            def finalize(self): return True
        tasks, collectors, stats, results = [], [], [], [None, None]
        for t in range(2):
            task = Sniper.Task(f"task{{t}}"); task.setEvtMax(-1)
            reader = task.createAlg("HitsReaderAlg/reader"); reader.property("Files").set([{str(events)!r}] * 3)
            reco = task.createAlg("JunoBridgeAlg/reco"); reco.property("Model").set({models["onnx"]!r})
            stats.append(jbs.add_alg(task, Stats("stats", reco)))
            collectors.append(jbs.add_alg(task, Collector("collect", ["energy"])))
            tasks.append(task)
        barrier = threading.Barrier(2)
        def run(t):
            barrier.wait()
            try:
                jbs.run(tasks[t]); results[t] = "ok"
            except jbs.JobError as err:
                results[t] = str(err)
        threads = [threading.Thread(target=run, args=(t,)) for t in range(2)]
        [th.start() for th in threads]; [th.join() for th in threads]
        emit(results=results, ids=[[s["backend_id"] for s in st.seen] for st in stats],
             users=[max(s["backend_users"] for s in st.seen) for st in stats],
             energy=[c.stacked()["energy"].tolist() for c in collectors])
    ''')
    assert job.result and job.result["results"] == ["ok", "ok"], job
    ids = job.result["ids"]
    assert len(set(ids[0] + ids[1])) == 1, ids  # one backend session for both tasks, every event
    assert job.result["users"] == [2, 2], job.result["users"]
    assert "shares backend session" in job.output, job
    expected = np.tile(plain_session(models["onnx"], dense_events)["energy"], 3)
    for energy in job.result["energy"]:
        np.testing.assert_array_equal(np.asarray(energy, np.float32), expected)


def test_run_raises_when_the_job_fails(models, events, run_job):
    job = run_job(f'''
        task = Sniper.Task("task"); task.setEvtMax(-1)
        reader = task.createAlg("HitsReaderAlg/reader"); reader.property("Files").set([{str(events)!r}])
        reco = task.createAlg("JunoBridgeAlg/reco"); reco.property("Model").set("/nonexistent/model.onnx")
        jbs.run(task)
        emit(reached=True)
    ''')
    assert job.rc == 1 and job.result is None, job
    assert "juno_bridge.sniper.JobError: SNiPER task 'task' ended with an error" in job.output, job


def test_the_store_holds_every_dtype_python_names(run_job):
    """store.create / store[...] for every dtype of the core, bfloat16 (ml_dtypes) among them: the same
    memory, the same bits."""
    job = run_job('''
        import ml_dtypes
        class Every(Sniper.PyAlgBase):
            def initialize(self): self.store = jbs.store(self); return True
            def execute(self):
                seen = {}
                for name in ["float32", "float64", "float16", "bfloat16", "int8", "int16", "int32", "int64",
                             "uint8", "uint16", "uint32", "uint64", "bool"]:
                    dtype = np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)
                    made = self.store.create("t_" + name, (2, 3), dtype)
                    made[...] = np.arange(6).reshape(2, 3).astype(dtype)
                    back = self.store["t_" + name]
                    same = back.__array_interface__["data"][0] == made.__array_interface__["data"][0]
                    seen[name] = [str(back.dtype), same, back.astype(np.float64).ravel().tolist()]
                emit(seen=seen)
                return True
            def finalize(self): return True
        task = Sniper.Task("task"); task.setEvtMax(1)
        every = jbs.add_alg(task, Every("every"))
        jbs.run(task)
    ''')
    assert job.result, job
    for name, (dtype, same_memory, values) in job.result["seen"].items():
        assert dtype == name and same_memory, (name, dtype, same_memory)
        assert values == ([0.0, 1.0, 1.0, 1.0, 1.0, 1.0] if name == "bool" else [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]), name


def test_a_readers_input_is_made_in_memory_from_its_session(models, events, dense_events, run_job):
    # On a GPU session that memory is pinned (Session.empty), so the copy to the device needs no staging;
    # here it is host memory either way, and the store says whose session made it.
    job = run_job(f'''
        task = Sniper.Task("task"); task.setEvtMax(-1)
        reader = task.createAlg("HitsReaderAlg/reader"); reader.property("Files").set([{str(events)!r}])
        reco = task.createAlg("JunoBridgeAlg/reco"); reco.property("Model").set({models["onnx"]!r})
        again = task.createAlg("JunoBridgeAlg/again"); again.property("Model").set({models["onnx"]!r})
        again.property("Outputs").set({{"vertex": "vertex2", "energy": "energy2"}})
        seen = []
        class Probe(Sniper.PyAlgBase):
            def initialize(self): self.store = jbs.store(self); return True
            def execute(self):
                seen.append(dict(pmt=self.store.memory("pmt"), vertex=self.store.memory("vertex"),
                                 address=self.store.address("pmt"), read=jbs.input_addresses(reco)[0],
                                 read_again=jbs.input_addresses(again)[0],
                                 same=bool(np.array_equal(self.store["vertex"], self.store["vertex2"]))))
                return True
            def finalize(self): return True
        probe = Probe("probe"); task.addAlg(probe)
        ok = task.run()
        emit(ok=ok, seen=seen)
    ''')
    assert job.result and job.result["ok"], job
    seen = job.result["seen"]
    assert len(seen) == N_EVENTS
    for s in seen:
        assert s["pmt"] == ["cpu", "reco"]  # the first reader's session made it; the second reads it too
        assert s["vertex"] == ["cpu", ""]   # an output: the store's own memory
        assert s["read"] == s["read_again"] == s["address"] and s["same"]
    assert len({s["address"] for s in seen}) == 1  # made once, reused in place every event
