"""Faults of a remote model, each against a real server: killed mid-run, paused past the deadline, never
started, its model instance's stub killed or stopped and resumed. Each is a clear juno_bridge error naming
server and model in bounded time, never another request's outputs, the fallback answers when one is
configured, and nothing is left in /dev/shm."""
from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from helpers.triton_servers import client_regions, kill, shm_entries, stub_pids, tiny_server

import juno_bridge as jb  # noqa: E402
from juno_bridge.demo.models.builtin import builtin_input, builtin_model  # noqa: E402
from juno_bridge.serve import TritonServer, free_port  # noqa: E402

pytestmark = pytest.mark.triton
TINY = str(builtin_model("tiny"))


def ours() -> set[str]:
    """/dev/shm's names of our servers and clients (jbserve*, jb*): other programs' come and go meanwhile."""
    return {n for n in shm_entries() if n.startswith("jb")}


@pytest.fixture
def no_leftovers():
    """Every test leaves /dev/shm as it found it: the server's regions and the client's."""
    before = ours()
    yield
    deadline = time.monotonic() + 5  # the resource tracker of a closed region may lag a moment
    while ours() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ours() - before == set()


def expected(x):
    return jb.Session(TINY).run({"x": x})["y"]


def test_server_killed_mid_run_is_a_clear_error_and_the_fallback_answers(no_leftovers):
    server = tiny_server()
    try:
        remote = jb.Session(server.url(), config={"timeout_s": "5", "retries": "2"})
        guarded = jb.Session(server.url(), config={"timeout_s": "5", "retries": "1", "fallback": TINY})
        x = builtin_input("tiny", 4)
        errors, calls = [], [0]
        stop = threading.Event()

        def loop():
            while not stop.is_set():
                try:
                    remote.run({"x": x})
                    calls[0] += 1
                except jb.Error as err:
                    errors.append((err, time.monotonic()))
                    return

        thread = threading.Thread(target=loop)
        thread.start()
        while calls[0] < 20:
            time.sleep(0.01)
        killed = time.monotonic()
        kill(server.process.pid)
        thread.join(timeout=30)
        stop.set()
        assert not thread.is_alive()
        (err, when), = errors
        assert isinstance(err, (jb.BackendUnavailableError, jb.RunError))
        assert f"triton server {server.address} model 'tiny'" in str(err)
        assert when - killed < 10
        # The same failure with a fallback configured: the local model answers instead.
        np.testing.assert_array_equal(guarded.run({"x": x})["y"], expected(x))
        remote.close()
        guarded.close()
    finally:
        server.stop()


def test_server_paused_past_the_deadline_fails_in_bounded_time(no_leftovers):
    server = tiny_server()
    try:
        remote = jb.Session(server.url(), config={"timeout_s": "1"})
        x = builtin_input("tiny", 2)
        remote.run({"x": x})
        kill(server.process.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        with pytest.raises(jb.RunError, match=rf"triton server {server.address} model 'tiny'.*deadline of 1 s"):
            remote.run({"x": x})
        assert time.monotonic() - t0 < 3
        guarded = jb.Session(server.url(), config={"timeout_s": "1", "fallback": TINY})
        np.testing.assert_array_equal(guarded.run({"x": x})["y"], expected(x))
        kill(server.process.pid, signal.SIGCONT)
        np.testing.assert_array_equal(remote.run({"x": x})["y"], expected(x))  # answers again once resumed
        remote.close()
        guarded.close()
    finally:
        server.stop()


def test_server_never_started_is_a_clear_error_or_the_fallback(no_leftovers):
    regions_before = client_regions()
    url = f"triton://127.0.0.1:{free_port()}/tiny"
    t0 = time.monotonic()
    with pytest.raises(jb.BackendUnavailableError, match=r"triton server 127\.0\.0\.1:\d+ model 'tiny'.*unavailable "
                                                         r"after 3 attempt"):
        jb.Session(url, config={"timeout_s": "2", "retries": "2"})
    assert time.monotonic() - t0 < 10
    guarded = jb.Session(url, config={"timeout_s": "2", "retries": "0", "fallback": TINY})
    assert [t.name for t in guarded.inputs()] == ["x"]  # the signature comes from the fallback model
    x = builtin_input("tiny", 3)
    np.testing.assert_array_equal(guarded.run({"x": x})["y"], expected(x))
    guarded.close()
    assert client_regions() == regions_before


def test_run_async_on_a_stopped_server_retries_then_fails_or_the_fallback_answers(no_leftovers):
    """A failed async_infer takes the synchronous path: its retries on UNAVAILABLE, then the fallback."""
    server = tiny_server()
    try:
        remote = jb.Session(server.url(), config={"timeout_s": "2", "retries": "1"})
        guarded = jb.Session(server.url(), config={"timeout_s": "2", "retries": "0", "fallback": TINY})
        assert remote.async_mode == guarded.async_mode == "native"
        x = builtin_input("tiny", 3)
        np.testing.assert_array_equal(remote.run_async({"x": x}).result(timeout=30)["y"], expected(x))
    finally:
        server.stop()
    t0 = time.monotonic()
    with pytest.raises(jb.BackendUnavailableError, match=f"triton server {server.address} model 'tiny'.*unavailable "
                                                         f"after 2 attempt"):
        remote.run_async({"x": x}).result(timeout=30)
    assert time.monotonic() - t0 < 10
    futures = [guarded.run_async({"x": x}) for _ in range(5)]
    for f in futures:
        np.testing.assert_array_equal(f.result(timeout=30)["y"], expected(x))
    remote.close()
    guarded.close()


def test_with_a_fallback_a_server_that_failed_is_left_alone_for_a_back_off(no_leftovers):
    """After the server is gone the first call pays its retries, then the fallback answers at once
    (the server is not asked) until the back-off ends; each further failure doubles the back-off."""
    from juno_bridge.remote import BACKOFF_S, RemoteModel

    server = tiny_server()
    x = builtin_input("tiny", 2)
    out = {"y": np.empty((2, 4), np.float32)}
    model = RemoteModel(server.url(), timeout_s=5, retries=3, fallback=TINY, shared_memory="off")
    try:
        model({"x": x}, out)
        assert model.fallback_runs == 0
    finally:
        server.stop()
    attempts = []
    infer = model._client.infer
    model._client.infer = lambda *a, **k: (attempts.append(1), infer(*a, **k))[1]  # counts, calls the real one
    model({"x": x}, out)
    assert len(attempts) == 4 and model.fallback_runs == 1  # the first call: 1 + 3 retries, then the fallback
    np.testing.assert_array_equal(out["y"], expected(x))
    for _ in range(5):
        out["y"][:] = np.nan
        model({"x": x}, out)
        np.testing.assert_array_equal(out["y"], expected(x))
    assert len(attempts) == 4 and model.fallback_runs == 6  # within the back-off: the server not asked
    model._down_until = 0.0  # the back-off over (not waited for: no timed test)
    model({"x": x}, out)
    assert len(attempts) == 8 and model._backoff == 2 * BACKOFF_S[0]
    model.close()


def test_a_killed_model_instance_is_reported_as_dead(no_leftovers):
    server = tiny_server()
    try:
        remote = jb.Session(server.url(), config={"timeout_s": "5"})
        x = builtin_input("tiny", 2)
        remote.run({"x": x})
        stubs = stub_pids(server)
        assert stubs, "no python backend stub found"
        for pid in stubs:
            kill(pid)
        t0 = time.monotonic()
        with pytest.raises(jb.RunError, match=rf"triton server {server.address} model 'tiny'.*instance is dead"):
            for _ in range(50):  # the server notices the dead stub within a call or two
                remote.run({"x": x})
                time.sleep(0.05)
        assert time.monotonic() - t0 < 15
        guarded = jb.Session(server.url(), config={"timeout_s": "5", "fallback": TINY})
        np.testing.assert_array_equal(guarded.run({"x": x})["y"], expected(x))
        remote.close()
        guarded.close()
    finally:
        server.stop()


def test_stopping_a_paused_server_is_bounded_and_leaves_nothing(no_leftovers):
    server = tiny_server(exit_timeout=2)
    kill(server.process.pid, signal.SIGSTOP)
    t0 = time.monotonic()
    server.stop()
    assert time.monotonic() - t0 < 10
    assert server.process.poll() is not None
    assert not list(server.shm_prefix and [n for n in shm_entries() if n.startswith(server.shm_prefix)])


CLEAR = ("deadline of 2 s", "instance is dead", "unavailable", "belongs to another request")


@pytest.mark.parametrize("trial", range(4))
def test_a_stub_stopped_past_the_deadline_never_hands_a_call_another_calls_outputs(trial):
    """Concurrent calls of distinct batches of one shape (a swapped answer then differs only in its values)
    while the model's stub is stopped for longer than the deadline and resumed: Triton's python backend
    has answered a request with another one's response then. Every call returns its own outputs or raises
    a clear error naming server and model; none outlives its deadline by more than a margin."""
    server = tiny_server()
    stubs, threads, stop = [], [], threading.Event()
    results, failures, durations = [], [], []
    try:
        remote = jb.Session(server.url(), config={"timeout_s": "2", "shared_memory": "on", "retries": "0"})
        stubs = stub_pids(server)
        assert stubs, "no python backend stub found"

        def calls(seed):
            rng = np.random.default_rng(seed)
            while not stop.is_set():
                x = rng.standard_normal((4, 8)).astype(np.float32)
                t0 = time.monotonic()
                try:
                    results.append((x, remote.run({"x": x})["y"]))
                except jb.Error as err:
                    failures.append(str(err))
                    time.sleep(0.01)
                durations.append(time.monotonic() - t0)

        threads = [threading.Thread(target=calls, args=(100 * trial + i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        while len(results) < 20 and not failures:
            time.sleep(0.01)
        for pid in stubs:
            kill(pid, signal.SIGSTOP)
        time.sleep(8)  # each call meanwhile is sent to the stub and given up on: stale work when it resumes
        for pid in stubs:
            kill(pid, signal.SIGCONT)
        time.sleep(3)  # calls meet the resumed stub (and the server's end, if it aborts)
    finally:
        for pid in stubs:
            kill(pid, signal.SIGCONT)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    try:
        assert not any(thread.is_alive() for thread in threads)
        wrong = [k for k, (x, y) in enumerate(results) if not np.array_equal(y, expected(x))]
        assert wrong == [], f"{len(wrong)} of {len(results)} calls returned another call's outputs"
        assert failures, "the stopped stub failed no call"
        unclear = [f for f in failures if f"triton server {server.address} model 'tiny'" not in f
                   or not any(c in f for c in CLEAR) or "Traceback" in f]
        assert unclear == []
        assert max(durations) < 2 + 1.5  # the deadline holds: retries and region set-up come out of it
        remote.close()
    finally:
        server.stop()
    own = (server.shm_prefix, f"jb{os.getpid()}x")  # not the whole /dev/shm: other programs come and go
    deadline = time.monotonic() + 5
    while [n for n in shm_entries() if n.startswith(own)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [n for n in shm_entries() if n.startswith(own)] == []


def registered(server) -> set[str]:
    import tritonclient.grpc as grpcclient

    with grpcclient.InferenceServerClient(server.address) as client:
        return set(client.get_system_shared_memory_status(as_json=True, client_timeout=5).get("regions", {}))


def test_a_timed_out_requests_regions_are_never_reused_and_go_once_the_server_lets_go():
    """A call past its deadline leaves its request running in the server, which may still write into the
    request's regions: the next call takes other regions, and the timed-out ones are unregistered and
    unmapped once the request has ended (Triton refuses to unregister them before)."""
    own = f"jb{os.getpid()}x"
    before = {n for n in shm_entries() if n.startswith(own)}  # other sessions' of this process, still open
    server = TritonServer(["python:helpers.slow_algos:sleepy"], names=["sleepy"], instances=2).start()
    try:
        remote = jb.Session(server.url(), config={"timeout_s": "1", "shared_memory": "on"})
        x = np.zeros((2, 4), np.float32)
        np.testing.assert_array_equal(remote.run({"x": x})["y"], x + 1)
        first = {n for n in shm_entries() if n.startswith(own)} - before
        assert len(first) == 2 and first <= registered(server)
        stalled = x.copy()
        stalled[0, 0] = 4  # the model sleeps 4 s on this batch
        with pytest.raises(jb.RunError, match="deadline of 1 s"):
            remote.run({"x": stalled})
        # The request still runs (on one instance): its regions stay registered and mapped, not reused.
        assert first <= registered(server)
        x[1] = 5
        np.testing.assert_array_equal(remote.run({"x": x})["y"], x + 1)  # on the other instance
        now = {n for n in shm_entries() if n.startswith(own)} - before
        assert len(now - first) == 2 and first <= registered(server)
        deadline = time.monotonic() + 30  # the stalled request ends after 4 s; the reaper then unregisters
        while (first & registered(server) or first & shm_entries()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not first & registered(server), "the timed-out request's regions stay registered in the server"
        assert not first & shm_entries()
        np.testing.assert_array_equal(remote.run({"x": x})["y"], x + 1)
        remote.close()
    finally:
        server.stop()
