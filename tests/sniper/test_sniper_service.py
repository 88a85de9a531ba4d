"""JunoBridgeSvc: the SNiPER service that owns a juno-bridge runtime, in Python jobs (subprocesses); and
JunoBridgeAlg's store entries kept between events."""
from __future__ import annotations

import json
import subprocess

import numpy as np

from helpers.sniper_env import LIBRARY, job_env, plain_session


def test_algorithms_of_one_model_share_a_session_in_a_service_never_across_services(models, events,
                                                                                    dense_events, run_job):
    job = run_job(f'''
        task = Sniper.Task("task"); task.setEvtMax(-1)
        task.createSvc("JunoBridgeSvc")
        other = task.createSvc("JunoBridgeSvc/other"); other.property("AsyncThreads").set(2)
        reader = task.createAlg("HitsReaderAlg/reader"); reader.property("Files").set([{str(events)!r}])
        algs = {{}}
        for name, service in [("a", "JunoBridgeSvc"), ("b", "JunoBridgeSvc"), ("c", "other")]:
            alg = task.createAlg(f"JunoBridgeAlg/{{name}}"); alg.property("Model").set({models["onnx"]!r})
            alg.property("Outputs").set({{"vertex": f"vertex_{{name}}", "energy": f"energy_{{name}}"}})
            alg.property("Service").set(service)
            algs[name] = alg
        stats = {{}}
        class Probe(Sniper.PyAlgBase):
            def initialize(self): return True
            def execute(self):
                stats.update({{name: jbs.session_stats(alg) for name, alg in algs.items()}}); return True
            def finalize(self): return True
        probe = Probe("probe"); task.addAlg(probe)
        keys = [f"{{k}}_{{n}}" for n in "abc" for k in ("vertex", "energy")]
        collect = Collector("collect", keys); task.addAlg(collect)
        ok = task.run()
        emit(ok=ok, stats=stats, **{{k: v.tolist() for k, v in collect.stacked().items()}})
    ''')
    assert job.result and job.result["ok"], job
    stats = job.result["stats"]
    assert stats["a"]["backend_id"] == stats["b"]["backend_id"]   # one runtime, one model: one backend session
    assert stats["a"]["backend_users"] == 2
    assert stats["c"]["backend_id"] != stats["a"]["backend_id"]   # another runtime: a session of its own
    assert stats["c"]["backend_users"] == 1
    assert "in the runtime of JunoBridgeSvc" in job.output and "in the runtime of other" in job.output
    assert "runtime with no async threads" in job.output and "runtime with 2 async thread(s)" in job.output
    expected = plain_session(models["onnx"], dense_events)
    for name in "abc":
        for k in ("vertex", "energy"):
            np.testing.assert_array_equal(np.asarray(job.result[f"{k}_{name}"], np.float32), expected[k])


def test_a_service_shared_by_two_tasks_declared_from_python(models, events, dense_events, run_job):
    """SNiPER's SharedElem: Sniper.create makes the one instance, each task adds it."""
    job = run_job(f'''
        svc = Sniper.create("SharedElem<JunoBridgeSvc>/JunoBridgeSvc"); svc.property("AsyncThreads").set(0)
        tasks, collectors, stats = [], [], []
        barrier = threading.Barrier(2, timeout=120)
        class Probe(Sniper.PyAlgBase):
            """At the first event, once both tasks have opened their sessions: the reco's session."""
            def __init__(self, name, reco):
                super().__init__(name); self.reco = reco
            def initialize(self): self.done = False; return True
            def execute(self):
                if not self.done:
                    barrier.wait(); stats.append(jbs.session_stats(self.reco)); self.done = True
                return True
            def finalize(self): return True
        keep = []
        for t in range(2):
            task = Sniper.Task(f"task{{t}}"); task.setEvtMax(-1); task.addSvc(svc)
            reader = task.createAlg("HitsReaderAlg/reader"); reader.property("Files").set([{str(events)!r}])
            reco = task.createAlg("JunoBridgeAlg/reco"); reco.property("Model").set({models["onnx"]!r})
            keep.append(Probe("probe", reco)); task.addAlg(keep[-1])
            collectors.append(Collector("collect", ["vertex", "energy"])); task.addAlg(collectors[-1])
            tasks.append(task)
        results = [None, None]
        def run(t):
            results[t] = tasks[t].run()
        threads = [threading.Thread(target=run, args=(t,)) for t in range(2)]
        [th.start() for th in threads]; [th.join() for th in threads]
        emit(ok=all(results), stats=stats,
             outputs=[{{k: v.tolist() for k, v in c.stacked().items()}} for c in collectors])
    ''')
    assert job.result and job.result["ok"], job
    stats = job.result["stats"]
    assert len(stats) == 2 and stats[0]["backend_id"] == stats[1]["backend_id"]  # two tasks, one backend session
    assert stats[0]["backend_users"] == 2
    assert job.output.count("runtime with no async threads") == 1  # initialized once, by the first task
    expected = plain_session(models["onnx"], dense_events)
    for out in job.result["outputs"]:
        for k in ("vertex", "energy"):
            np.testing.assert_array_equal(np.asarray(out[k], np.float32), expected[k])


def test_without_the_property_an_algorithm_takes_the_one_service_of_its_task_whatever_its_name(models, events,
                                                                                             run_job):
    job = run_job(f'''
        task = Sniper.Task("task"); task.setEvtMax(-1)
        task.createSvc("JunoBridgeSvc/mine")
        reader = task.createAlg("HitsReaderAlg/reader"); reader.property("Files").set([{str(events)!r}])
        reco = task.createAlg("JunoBridgeAlg/reco"); reco.property("Model").set({models["onnx"]!r})
        emit(ok=task.run())
    ''')
    assert job.result and job.result["ok"], job
    assert "in the runtime of mine" in job.output, job


def test_service_properties_that_cannot_work_fail_the_job_saying_why(models, events, run_job):
    for setup, message in [
        ('task.createSvc("JunoBridgeSvc"); task.createSvc("JunoBridgeSvc/other")',
         "task 'task' has 2 JunoBridgeSvc (JunoBridgeSvc, other): name one with the property Service"),
        ('reco.property("Service").set("nosuch")', "names 'nosuch', which neither this task nor a task above it has"),
        ('reco.property("Service").set("DataMemSvc")', "not a JunoBridgeSvc"),
        ('task.createSvc("JunoBridgeSvc").property("AsyncThreads").set(-2)', "AsyncThreads must be -1"),
    ]:
        job = run_job(f'''
            task = Sniper.Task("task"); task.setEvtMax(-1)
            reader = task.createAlg("HitsReaderAlg/reader"); reader.property("Files").set([{str(events)!r}])
            reco = task.createAlg("JunoBridgeAlg/reco"); reco.property("Model").set({models["onnx"]!r})
            {setup}
            emit(ok=task.run())
        ''')
        assert job.result and job.result["ok"] is False, job
        assert message in job.output, job


def test_jobs_without_a_service_use_the_process_default_runtime(models, events, run_job):
    job = run_job(f'''
        task = Sniper.Task("task"); task.setEvtMax(-1)
        reader = task.createAlg("HitsReaderAlg/reader"); reader.property("Files").set([{str(events)!r}])
        reco = task.createAlg("JunoBridgeAlg/reco"); reco.property("Model").set({models["onnx"]!r})
        emit(ok=task.run())
    ''')
    assert job.result and job.result["ok"], job
    assert "opened" in job.output and "in the runtime of" not in job.output


def test_an_input_erased_and_made_again_is_read_where_it_now_is(models, events, dense_events, run_job):
    """JunoBridgeAlg keeps its store entries between events: an erase must make it look them up again."""
    job = run_job(f'''
        class Remake(Sniper.PyAlgBase):
            """Each event: erases pmt_py and makes it again (new memory: the old array is kept alive), after
            another tensor, which may take the erased entry's place."""
            def __init__(self, name):
                super().__init__(name); self.kept, self.addresses = [], []
            def initialize(self): self.store = jbs.store(self); return True
            def execute(self):
                pmt = np.array(self.store["pmt"])
                if "pmt_py" in self.store:
                    self.kept.append(self.store["pmt_py"]); self.store._handle.erase("pmt_py")
                self.store.create(f"filler{{len(self.addresses)}}", (1,))
                self.store.create("pmt_py", pmt.shape)[...] = pmt
                self.addresses.append(self.store.address("pmt_py"))
                return True
            def finalize(self): return True
        class Read(Sniper.PyAlgBase):
            def __init__(self, name, reco):
                super().__init__(name); self.reco, self.read = reco, []
            def initialize(self): return True
            def execute(self): self.read.append(jbs.input_addresses(self.reco)[0]); return True
            def finalize(self): return True
        task = Sniper.Task("task"); task.setEvtMax(-1)
        reader = task.createAlg("HitsReaderAlg/reader"); reader.property("Files").set([{str(events)!r}])
        remake = Remake("remake"); task.addAlg(remake)
        reco = task.createAlg("JunoBridgeAlg/reco"); reco.property("Model").set({models["onnx"]!r})
        reco.property("Inputs").set({{"pmt": "pmt_py"}})
        read = Read("read", reco); task.addAlg(read)
        collect = Collector("collect", ["vertex", "energy"]); task.addAlg(collect)
        ok = task.run()
        emit(ok=ok, made=remake.addresses, read=read.read, **{{k: v.tolist() for k, v in collect.stacked().items()}})
    ''')
    assert job.result and job.result["ok"], job
    assert len(set(job.result["made"])) == len(job.result["made"])  # new memory every event
    assert job.result["read"] == job.result["made"]                  # and the model read it there
    expected = plain_session(models["onnx"], dense_events)
    for k in ("vertex", "energy"):
        np.testing.assert_array_equal(np.asarray(job.result[k], np.float32), expected[k])


def test_a_json_job_declares_the_shared_service_under_shared_elems(models, events, tmp_path):
    """sniper.exe job.json: SNiPER makes the SharedElem from "SharedElems"; the task names it by index."""
    job = {
        "sniper": {"LoadDlls": [str(LIBRARY)], "LogLevel": 2,
                   "SharedElems": [{"identifier": "SharedElem<JunoBridgeSvc>/JunoBridgeSvc", "index": 0,
                                    "properties": {"AsyncThreads": 3}}]},
        "identifier": "Task/task", "properties": {"EvtMax": -1},
        "services": [{"identifier": "[0]:SharedElem<JunoBridgeSvc>/JunoBridgeSvc"}],
        "algorithms": [{"identifier": "HitsReaderAlg/reader", "properties": {"Files": [str(events)]}},
                       {"identifier": "JunoBridgeAlg/reco", "properties": {"Model": models["onnx"]}}],
    }
    (tmp_path / "job.json").write_text(json.dumps(job))
    proc = subprocess.run(["sniper.exe", str(tmp_path / "job.json")], cwd=tmp_path, env=job_env(), capture_output=True,
                          text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "runtime with 3 async thread(s)" in output and "in the runtime of JunoBridgeSvc" in output, output
    assert "events processed 12" in output, output


def test_a_python_session_alg_opens_its_session_in_the_tasks_service(models, events, dense_events, run_job):
    """jbs.SessionAlg takes the service as JunoBridgeAlg does: with one JunoBridgeSvc in the task, both
    algorithms of one model and options share one backend session in it; a SessionAlg naming another
    service, or given a runtime of the caller's own, does not."""
    job = run_job(f'''
        import juno_bridge as jb
        task = Sniper.Task("task"); task.setEvtMax(-1)
        task.createSvc("JunoBridgeSvc")
        reader = task.createAlg("HitsReaderAlg/reader"); reader.property("Files").set([{str(events)!r}])
        reco = task.createAlg("JunoBridgeAlg/reco"); reco.property("Model").set({models["onnx"]!r})
        pyreco = jbs.SessionAlg("pyreco", {models["onnx"]!r}, outputs={{"vertex": "py_vertex", "energy": "py_energy"}},
                                intra_op_threads=1)  # JunoBridgeAlg's Threads: the same options
        task.addAlg(pyreco)
        own = jb.Runtime(0)
        mine = jbs.SessionAlg("mine", {models["onnx"]!r}, outputs={{"vertex": "my_vertex", "energy": "my_energy"}},
                              intra_op_threads=1, runtime=own)
        task.addAlg(mine)
        seen = {{}}
        class Probe(Sniper.PyAlgBase):
            def initialize(self): return True
            def execute(self):
                seen.update(reco=jbs.session_stats(reco)["backend_id"],
                            py=pyreco.session._stats()["backend_id"], mine=mine.session._stats()["backend_id"],
                            runtime=repr(pyreco.session.runtime), count=pyreco.session.runtime.open_backend_count())
                return True
            def finalize(self): return True
        probe = Probe("probe"); task.addAlg(probe)
        collect = Collector("collect", ["vertex", "py_vertex", "my_vertex"]); task.addAlg(collect)
        ok = task.run()
        emit(ok=ok, closed=pyreco.session is None, **seen, **{{k: v.tolist() for k, v in collect.stacked().items()}})
    ''')
    assert job.result and job.result["ok"], job
    r = job.result
    assert r["py"] == r["reco"] and r["count"] == 1  # one backend session in the service's runtime
    assert r["mine"] != r["reco"]                    # the caller's own runtime: a session of its own
    assert r["runtime"].startswith("Runtime(") and "of JunoBridgeSvc" in r["runtime"], r["runtime"]
    expected = plain_session(models["onnx"], dense_events)
    for key in ("vertex", "py_vertex", "my_vertex"):
        np.testing.assert_array_equal(np.asarray(r[key], np.float32), expected["vertex"])


def test_a_session_alg_naming_a_service_that_is_not_there_fails_saying_so(models, events, run_job):
    job = run_job(f'''
        task = Sniper.Task("task"); task.setEvtMax(-1)
        reader = task.createAlg("HitsReaderAlg/reader"); reader.property("Files").set([{str(events)!r}])
        pyreco = jbs.SessionAlg("pyreco", {models["onnx"]!r}, service="nosuch")
        task.addAlg(pyreco)  # SNiPER holds a plain pointer: keep the object
        emit(ok=task.run())
    ''')
    assert job.result and job.result["ok"] is False, job
    assert "service='nosuch' names no service of task 'task' or a task above it" in job.output, job
