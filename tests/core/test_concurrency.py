"""One Session shared by many Python threads: results identical to serial runs, and the GIL released while
the model runs (two threads finish the same work clearly faster than one)."""
from __future__ import annotations

import hashlib
import os
import time
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import juno_bridge as jb
from helpers import onnx_models
from helpers.reference import assert_bitwise_equal

BATCH = 64


@pytest.fixture(scope="module")
def dense_model(model_path):
    # ~10 ms per call on one core: long enough that the GIL, if held, would serialise the threads.
    return model_path("dense_4096_1024", onnx_models.dense, 4096, 1024, 4)


@pytest.fixture(scope="module")
def session(dense_model):
    return jb.Session(dense_model, intra_op_threads=1, inter_op_threads=1)


def event_batches(n):
    rng = np.random.default_rng(7)
    return [rng.standard_normal((BATCH, 4096)).astype(np.float32) for _ in range(n)]


def test_eight_threads_on_one_session_give_the_serial_results(session):
    batches = event_batches(24)
    serial = [session.run({"x": x})["y"] for x in batches]

    def job(i):
        x = batches[i]
        if i % 2:  # half the jobs write into their own buffers, half let the runtime allocate
            y = np.empty((BATCH, 4), np.float32)
            assert session.run({"x": x}, out={"y": y})["y"] is y
        else:
            y = session.run([x])["y"]
        return i, y

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(job, list(range(len(batches))) * 3))
    assert len(results) == 3 * len(batches)
    for i, y in results:
        assert_bitwise_equal(y, serial[i], f"batch {i}")


def test_threads_sharing_the_same_buffers_do_not_disturb_each_other(add_f32):
    # Every thread runs the same input arrays (the bound-buffer cache is contended), each into its own out=.
    s = jb.Session(add_f32, intra_op_threads=1)
    a = np.arange(3000, dtype=np.float32).reshape(300, 10)
    b = -2 * a
    expected = a + b

    def job(_):
        out = np.empty_like(a)
        for _ in range(200):
            out.fill(np.nan)
            s.run({"a": a, "b": b}, out={"c": out})
            if not np.array_equal(out, expected):
                return False
        return np.array_equal(s.run({"a": a, "b": b})["c"], expected)

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(job, range(8)))


def run_loop(session, x, n):
    y = np.empty((BATCH, 4), np.float32)
    for _ in range(n):
        session.run({"x": x}, out={"y": y})


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class SpeedUp:
    """Best time of one thread doing 2N units and of two threads doing N each, over repeated trials."""

    def __init__(self, loop, args_one, args_two):
        self.loop, self.args_one, self.args_two = loop, args_one, args_two
        self.one = self.two = float("inf")

    def trial(self, n):
        one = timed(lambda: self.loop(*self.args_one, 2 * n))
        self.one = min(self.one, one)
        threads = [threading.Thread(target=self.loop, args=(*args, n)) for args in self.args_two]

        def both():
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        two = timed(both)
        self.two = min(self.two, two)
        self.last = one / two  # this trial's own speed-up
        return self.ratio

    @property
    def ratio(self):
        return self.one / self.two


def hash_loop(data, n):
    for _ in range(n):
        hashlib.sha256(data).digest()  # hashlib releases the GIL for large buffers


def test_two_threads_finish_the_work_clearly_faster_than_one(session):
    """Speed-up of 2 threads x N runs over 1 thread x 2N runs; needs the GIL released during run().

    Other builds share this 2-core machine: each side keeps its best time over trials (a quiet moment shows
    what the code can do) for up to 45 s. Beside it runs a calibration that surely releases the GIL (hashing):
    if even that never gets a second core in the window, the machine cannot show a speed-up, and the test
    says so and skips; test_python_keeps_running_while_a_long_run_is_in_flight proves the GIL release anyway."""
    xs = event_batches(2)
    run_loop(session, xs[0], 3)  # warm-up
    ours = SpeedUp(lambda x, n: run_loop(session, x, n), (xs[0],), [(xs[0],), (xs[1],)])
    blob = bytes(4 << 20)
    calibration = SpeedUp(hash_loop, (blob,), [(blob,), (blob,)])
    deadline = time.monotonic() + 45
    free_core_trials = 0  # trials in which the calibration clearly had a second core
    while time.monotonic() < deadline:
        if ours.trial(8) > 1.3:
            break
        calibration.trial(8)
        free_core_trials += calibration.last > 1.6
    summary = (f"juno-bridge: one thread {ours.one:.3f} s, two threads {ours.two:.3f} s ({ours.ratio:.2f}x); "
               f"hashing: {calibration.ratio:.2f}x, {free_core_trials} trial(s) above 1.6x; load average "
               f"{os.getloadavg()} on {os.cpu_count()} cores")
    # A failure needs repeated evidence of a free second core that our runs could not use; a moment of
    # quiet caught by the calibration alone is not that.
    if ours.ratio <= 1.3 and free_core_trials < 3:
        pytest.skip(f"no second free core during 45 s: {summary}")
    assert ours.ratio > 1.3, summary


def test_python_keeps_running_while_a_long_run_is_in_flight(session):
    """Load-independent evidence of the released GIL: while one thread is inside a ~0.2 s run(), the main
    thread keeps executing Python; with the GIL held it would stall for the whole run."""
    x = np.ones((32 * BATCH, 4096), np.float32)
    start = time.perf_counter()
    session.run({"x": x})
    single = time.perf_counter() - start
    worker = threading.Thread(target=session.run, args=({"x": x},))
    last = time.perf_counter()
    longest_stall = 0.0
    worker.start()
    while worker.is_alive():
        now = time.perf_counter()
        longest_stall = max(longest_stall, now - last)
        last = now
    worker.join()
    assert longest_stall < single / 2, f"main thread stalled {longest_stall:.3f} s during a {single:.3f} s run"


def test_sessions_opened_and_run_from_many_threads_at_once(add_f32):
    data = add_f32.read_bytes()

    def job(i):
        with jb.Session(data if i % 2 else add_f32, intra_op_threads=1) as s:
            a = np.full((3, 4), i, np.float32)
            return float(s.run([a, a])["c"].sum())

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(job, range(32))) == [24.0 * i for i in range(32)]


def test_closing_a_session_while_other_threads_run_it(session):
    """Runs in flight finish; later runs get a clear error; nothing crashes."""
    x = event_batches(1)[0]
    s = jb.Session(session.model, intra_op_threads=1)
    outcomes = []

    def worker():
        for _ in range(200):
            try:
                s.run({"x": x})
                outcomes.append("ran")
            except jb.InvalidArgumentError as e:
                outcomes.append(str(e))
                return

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    s.close()
    for t in threads:
        t.join()
    assert outcomes.count("the session is closed") == 4
    assert set(outcomes) <= {"ran", "the session is closed"}
