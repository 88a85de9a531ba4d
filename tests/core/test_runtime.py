"""jb.Runtime from Python: Sessions opened with runtime= share backend sessions inside it and never across;
its executor (a pool of N threads, the calling thread, or the caller's callable) runs run_async's work;
close() waits for the runs in flight and closes its Sessions. The C and C++ sides: tests/native/test_runtime.py."""
from __future__ import annotations

import logging
import os
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import juno_bridge as jb


def backend_id(session) -> int:
    return session._stats()["backend_id"]


def thread_count() -> int:
    return len(os.listdir("/proc/self/task"))  # native threads too, not only Python's


def operands(batch: int, n: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    return {"a": rng.normal(size=(batch, n)).astype(np.float32), "b": rng.normal(size=(batch, n)).astype(np.float32)}


def test_sessions_share_inside_a_runtime_and_never_across(add_f32):
    with jb.Runtime(1) as first, jb.Runtime(1) as second:
        a1, a2 = jb.Session(add_f32, runtime=first), jb.Session(add_f32, runtime=first)
        b1 = jb.Session(add_f32, runtime=second)
        default = jb.Session(add_f32)
        assert backend_id(a1) == backend_id(a2) and a1._stats()["backend_users"] == 2
        assert len({backend_id(a1), backend_id(b1), backend_id(default)}) == 3
        assert first.open_backend_count() == 1 and second.open_backend_count() == 1
        assert a1.runtime is first and default.runtime is None
        a1.close()
        assert first.open_backend_count() == 1  # a2 still uses it
        a2.close()
        assert first.open_backend_count() == 0
        default.close()


def test_a_pool_starts_no_more_threads_than_its_size(add_f32):
    before = thread_count()
    with jb.Runtime(2) as runtime:
        assert (runtime.executor_kind, runtime.async_threads, runtime.started_threads) == ("pool", 2, 0)
        session = jb.Session(add_f32, runtime=runtime, intra_op_threads=1, async_runs="pool")
        feeds = [operands(4, seed=i) for i in range(40)]
        futures = [session.run_async(f) for f in feeds]
        for feed, future in zip(feeds, futures):
            np.testing.assert_array_equal(future.result(timeout=60)["c"], feed["a"] + feed["b"])
        assert 1 <= runtime.started_threads <= 2
        assert thread_count() - before <= 2
    assert thread_count() == before  # close() joined them


def test_zero_threads_runs_on_the_calling_thread(add_f32):
    with jb.Runtime(0) as runtime:
        assert runtime.executor_kind == "caller" and runtime.async_threads == 0
        session = jb.Session(add_f32, runtime=runtime, intra_op_threads=1)
        assert session.async_mode == "pool"
        seen = []
        feed = operands(3)
        future = session.run_async(feed)
        future.add_done_callback(lambda f: seen.append(threading.get_ident()))
        assert future.done()  # before run_async returned
        assert seen == [threading.get_ident()]
        np.testing.assert_array_equal(future.result()["c"], feed["a"] + feed["b"])


def test_the_callers_executor_runs_the_work_where_it_chooses(add_f32):
    tasks = []
    with jb.Runtime(executor=tasks.append) as runtime:
        assert runtime.executor_kind == "executor" and runtime.executor == tasks.append
        session = jb.Session(add_f32, runtime=runtime, intra_op_threads=1)
        feeds = [operands(2, seed=i) for i in range(6)]
        futures = [session.run_async(f) for f in feeds]
        assert len(tasks) == 6 and not any(f.done() for f in futures)  # nothing ran: the executor holds it
        where = []
        worker = threading.Thread(target=lambda: [where.append(threading.get_ident()) or task() for task in tasks])
        worker.start()
        worker.join()
        for feed, future in zip(feeds, futures):
            np.testing.assert_array_equal(future.result(timeout=0)["c"], feed["a"] + feed["b"])
        with pytest.raises(jb.InvalidArgumentError, match="already run"):
            tasks[0]()


def test_an_executor_that_raises_is_reported_and_the_run_still_ends(add_f32, caplog):
    def broken(task):
        raise RuntimeError("queue full")

    with jb.Runtime(executor=broken) as runtime, caplog.at_level(logging.ERROR, logger="juno_bridge.runtime"):
        session = jb.Session(add_f32, runtime=runtime, intra_op_threads=1)
        feed = operands(2)
        np.testing.assert_array_equal(session.run_async(feed).result(timeout=60)["c"], feed["a"] + feed["b"])
    assert "queue full" in caplog.text


def test_close_waits_for_the_runs_in_flight_and_closes_its_sessions(add_f32):
    release = threading.Event()
    held = []

    def slow_executor(task):
        def later():
            release.wait()
            task()
        thread = threading.Thread(target=later)
        held.append(thread)
        thread.start()

    runtime = jb.Runtime(executor=slow_executor)
    session = jb.Session(add_f32, runtime=runtime, intra_op_threads=1)
    futures = [session.run_async(operands(2, seed=i)) for i in range(3)]
    closer = threading.Thread(target=runtime.close)
    closer.start()
    closer.join(timeout=0.2)
    assert closer.is_alive() and not any(f.done() for f in futures)  # close() is waiting for them
    release.set()
    closer.join(timeout=60)
    assert not closer.is_alive() and all(f.exception() is None for f in futures)
    for thread in held:
        thread.join()
    assert runtime.closed and session.closed and runtime.open_backend_count() == 0
    with pytest.raises(jb.InvalidArgumentError, match="the session is closed"):
        session.run(operands(2))
    with pytest.raises(jb.InvalidArgumentError, match="the runtime is closed"):
        jb.Session(add_f32, runtime=runtime)
    assert "closed" in repr(runtime) and "closed" in repr(session)


@pytest.mark.parametrize("args, kwargs, message", [
    ((-1,), {}, "async_threads must be"),
    (("2",), {}, "async_threads must be"),
    ((True,), {}, "async_threads must be"),
    ((2,), {"executor": print}, "not both"),
    ((), {"executor": 3}, "executor must be callable"),
])
def test_bad_arguments_are_refused(args, kwargs, message):
    with pytest.raises(jb.InvalidArgumentError, match=message):
        jb.Runtime(*args, **kwargs)


def test_runtime_argument_must_be_a_runtime(add_f32):
    with pytest.raises(jb.InvalidArgumentError, match="runtime must be a juno_bridge.Runtime, got str"):
        jb.Session(add_f32, runtime="pool")


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(0, 64), n=st.integers(1, 16), runs=st.integers(1, 8))
def test_every_executor_gives_the_synchronous_result(add_f32, batch, n, runs):
    feeds = [operands(batch, n, seed=i) for i in range(runs)]
    tasks = []
    with jb.Session(add_f32, intra_op_threads=1) as reference:
        expected = [reference.run(f)["c"] for f in feeds]
    for runtime in (jb.Runtime(1), jb.Runtime(0), jb.Runtime(executor=tasks.append)):
        with runtime, jb.Session(add_f32, runtime=runtime, intra_op_threads=1) as session:
            futures = [session.run_async(f) for f in feeds]
            while tasks:
                tasks.pop(0)()
            for want, future in zip(expected, futures):
                np.testing.assert_array_equal(future.result(timeout=60)["c"], want)


def test_a_thread_pool_executor_can_be_the_executor(add_f32):
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="framework") as pool:
        names = []
        def executor(task):
            pool.submit(lambda: names.append(threading.current_thread().name) or task())

        with jb.Runtime(executor=executor) as runtime, jb.Session(add_f32, runtime=runtime) as session:
            feeds = [operands(8, seed=i) for i in range(10)]
            for feed, future in [(f, session.run_async(f)) for f in feeds]:
                np.testing.assert_array_equal(future.result(timeout=60)["c"], feed["a"] + feed["b"])
        assert len(names) == 10 and all(n.startswith("framework") for n in names)


def test_a_service_runtime_from_another_juno_bridge_core_is_refused_untouched():
    """juno_bridge.sniper.SessionAlg takes a SNiPER JunoBridgeSvc's runtime (tests/sniper/test_sniper_service.py);
    when the SNiPER package links another libjuno_bridge than this module, the runtime is refused before its
    pointer is read (here a capsule over NULL, with another core's address)."""
    import ctypes

    from juno_bridge._core import _service_runtime

    new = ctypes.pythonapi.PyCapsule_New
    new.restype, new.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    name = ctypes.create_string_buffer(b"juno_bridge.shared_runtime")
    capsule = new(ctypes.cast(name, ctypes.c_void_p), name, None)  # any non-NULL pointer: never read
    with pytest.raises(jb.InvalidArgumentError, match="the SNiPER package links another juno-bridge core than this "
                                                      "Python module .*service JunoBridgeSvc's runtime cannot be used"):
        _service_runtime(capsule, "JunoBridgeSvc", 8)
