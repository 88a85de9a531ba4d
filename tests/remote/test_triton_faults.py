"""Faults of a remote model, each against a real server: killed mid-run, paused past the deadline, never
started, its model instance's stub killed. Each is a clear juno_bridge error naming server and model in
bounded time, the fallback answers when one is configured, and nothing is left in /dev/shm."""
from __future__ import annotations

import signal
import threading
import time

import numpy as np
import pytest

from helpers.triton_servers import client_regions, kill, shm_entries, stub_pids, tiny_server

import juno_bridge as jb  # noqa: E402
from juno_bridge.demo.models.builtin import builtin_input, builtin_model  # noqa: E402
from juno_bridge.serve import free_port  # noqa: E402

pytestmark = pytest.mark.triton
TINY = str(builtin_model("tiny"))


@pytest.fixture
def no_leftovers():
    """Every test leaves /dev/shm as it found it: the server's regions and the client's."""
    before = shm_entries()
    yield
    deadline = time.monotonic() + 5  # the resource tracker of a closed region may lag a moment
    while shm_entries() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert shm_entries() - before == set()


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
