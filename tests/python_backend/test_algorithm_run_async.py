"""An algorithm with a run_async(inputs, outputs, done) of its own (the algorithm protocol, juno_bridge.algorithm):
Session.run_async goes through it (async_mode "native"), 100 in flight equal run, and each way it can fail
reaches the future as a clear error, the session running on after it."""
from __future__ import annotations

import numpy as np
import pytest

import juno_bridge as jb
from helpers import pyalgos
from helpers.async_runs import check_in_flight

DEFERRED = "python:helpers.pyalgos:Deferred"


def test_an_algorithm_with_run_async_runs_natively_and_hundred_in_flight_equal_run():
    with jb.Session(DEFERRED) as s:
        assert s.async_mode == "native"
        check_in_flight(s, [{"x": np.arange(k, k + 5, dtype=np.float32)} for k in range(4)])
    with jb.Session("python:helpers.pyalgos:linear") as plain:
        assert plain.async_mode == "pool"


def test_out_buffers_and_allocated_outputs_through_the_algorithms_run_async():
    x = np.arange(6, dtype=np.float32)
    outs = [np.zeros(6, np.float32) for _ in range(10)]
    with jb.Session(DEFERRED) as s:
        futures = [s.run_async({"x": x}, out={"y": outs[i]}) for i in range(10)]
        allocated = s.run_async({"x": x}).result(timeout=60)["y"]
        for i, f in enumerate(futures):
            assert f.result(timeout=60)["y"] is outs[i]
            np.testing.assert_array_equal(outs[i], 2 * x)
        np.testing.assert_array_equal(allocated, 2 * x)


@pytest.mark.parametrize("behaviour, message", [
    ("", "the algorithm's run_async failed:.*ValueError: negative input"),
    ("raise", "the algorithm's run_async raised an exception:.*ValueError: cannot start"),
    ("drop", "the algorithm's run_async dropped its done callback without calling it"),
])
def test_each_failure_of_an_asynchronous_algorithm_reaches_the_future(behaviour, message):
    with jb.Session(DEFERRED, config={"behaviour": behaviour}) as s:
        bad = np.array([1, -1], np.float32) if behaviour == "" else np.ones(2, np.float32)
        futures = [s.run_async({"x": bad}) for _ in range(10)]
        for f in futures:
            with pytest.raises(jb.RunError, match=f"(?s)python model '{DEFERRED}': {message}"):
                f.result(timeout=60)
    with jb.Session(DEFERRED) as s:
        np.testing.assert_array_equal(s.run_async({"x": np.ones(2, np.float32)}).result(timeout=60)["y"], [2, 2])


def test_a_view_kept_past_done_is_revoked_and_fails_the_run():
    pyalgos.deferred_kept.clear()
    with jb.Session(DEFERRED, config={"behaviour": "keep"}) as s:
        with pytest.raises(jb.RunError, match="kept input 'x' \\(revoked"):
            s.run_async({"x": np.ones(3, np.float32)}).result(timeout=60)
    (kept,) = pyalgos.deferred_kept
    with pytest.raises(jb.ReleasedViewError):
        kept.sum()
