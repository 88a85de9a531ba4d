"""Multi-task SNiPER jobs: tasks on C++ threads of their own (jb-sniper-tasks, the harness a multi-threaded
framework stands for), sharing one JunoBridgeSvc."""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from helpers.sniper_env import job_env, plain_session
from juno_bridge import paths


def tasks(events, model, out, *args) -> dict:
    out.mkdir()
    proc = subprocess.run([str(paths.program("jb-sniper-tasks")), str(events), model, "--out", str(out), *args],
                          env=job_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])


@pytest.mark.parametrize("service", [["--service", "--async-threads", "2"], ["--service", "--async-threads", "0"], []],
                         ids=["service-pool-2", "service-caller-thread", "process-default"])
def test_two_tasks_on_two_threads_match_one_task_bitwise_and_start_no_threads_of_their_own(
        service, models, events, dense_events, tmp_path):
    one = tasks(events, models["onnx"], tmp_path / "one", "--tasks", "1", *service)
    two = tasks(events, models["onnx"], tmp_path / "two", "--tasks", "2", *service)
    assert one["events"] == two["events"] == len(dense_events)
    expected = plain_session(models["onnx"], dense_events)
    for key in ("vertex", "energy"):
        reference = (tmp_path / "one" / f"task0.{key}.bin").read_bytes()
        assert reference == expected[key].tobytes()  # one task: the model as plain Python runs it
        for t in range(2):
            assert (tmp_path / "two" / f"task{t}.{key}.bin").read_bytes() == reference
    assert two["backend_sessions"] == 1  # both tasks' algorithms on one backend session
    for run in (one, two):
        # No thread beyond the harness's (one per task) and the runtime pool's (started on first use:
        # none, as JunoBridgeAlg runs on its task's thread); the backend's process-wide ones are in threads_before.
        assert run["threads_peak"] - run["threads_before"] <= run["harness_threads"] + run["pool_threads"], run
        assert run["pool_threads"] == 0, run
        assert run["threads_after"] == run["threads_before"], run  # the harness's threads joined, the pool closed


def test_two_intra_op_threads_in_two_tasks_are_one_pool_of_the_shared_session(models, events, tmp_path):
    """The count sees the threads a backend session starts: one ONNX Runtime pool (one extra thread for
    two intra-op threads) for the session both tasks share, not one per task."""
    run = tasks(events, models["onnx"], tmp_path / "two", "--tasks", "2", "--service", "--threads", "2")
    assert run["backend_sessions"] == 1
    assert run["threads_peak"] - run["threads_before"] == run["harness_threads"] + 1, run


def test_the_harness_refuses_what_it_cannot_do(models, events, tmp_path):
    def run(*args):
        return subprocess.run([str(paths.program("jb-sniper-tasks")), str(events), models["onnx"], *args],
                              env=job_env(), capture_output=True, text=True, timeout=600)

    proc = run("--async-threads", "2")
    assert proc.returncode == 1 and "--async-threads sizes the service's pool: it needs --service" in proc.stderr
    proc = run("--alg", "other")
    assert proc.returncode == 1 and "--alg must be reco, bare, empty or none; got 'other'" in proc.stderr


def test_an_empty_algorithm_and_session_run_alone_see_the_same_events(models, events, dense_events, tmp_path):
    """The benchmark's references: the reader's pmt through an empty algorithm, the model through
    Session::run alone, equal to what plain Python reads and computes."""
    empty = tasks(events, models["onnx"], tmp_path / "empty", "--alg", "empty")
    bare = tasks(events, models["onnx"], tmp_path / "bare", "--alg", "bare")
    assert empty["events"] == bare["events"] == len(dense_events)
    pmt = np.frombuffer((tmp_path / "empty" / "task0.pmt.bin").read_bytes(), np.float32)
    np.testing.assert_array_equal(pmt, dense_events.astype(np.float32).ravel())
    expected = plain_session(models["onnx"], dense_events)
    assert (tmp_path / "bare" / "task0.bare_vertex.bin").read_bytes() == expected["vertex"].tobytes()
