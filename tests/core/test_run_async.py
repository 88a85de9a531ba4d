"""Session.run_async: a concurrent.futures.Future of run's result, usable from asyncio, 100 in flight with
results equal to run; out= buffers written in place; errors come back through the future; close() waits
for the runs already made; the C ABI's jb_session_run_async with its completion callback. ONNX Runtime
sessions with 2 or more intra-op threads run through its RunAsync (async_mode "native"), those with one
through the core's worker pool ("pool"), said once at open in the debug log."""
from __future__ import annotations

import asyncio
import ctypes
import logging
import subprocess
import sys
import threading

import numpy as np
import pytest

import juno_bridge as jb
from juno_bridge.demo.models.builtin import builtin_input, builtin_model
from helpers import jb_c, onnx_models
from helpers.async_runs import check_in_flight


def test_hundred_in_flight_on_onnx_equal_run():
    with jb.Session(builtin_model("juno")) as s:
        check_in_flight(s, [[builtin_input("juno", 8, seed=i)] for i in range(5)])


def test_onnx_runtime_runs_async_on_the_pool_unless_asked_for_its_runasync():
    """auto: the pool (ONNX Runtime's RunAsync was 1.5x slower on the CPU); native on request."""
    with jb.Session(builtin_model("juno"), intra_op_threads=2, shared=False) as s:
        assert s.async_mode == "pool"
    with jb.Session(builtin_model("juno"), intra_op_threads=2, async_runs="pool", shared=False) as s:
        assert s.async_mode == "pool"
    with pytest.raises(jb.InvalidArgumentError, match="'async_runs' must be auto, native or pool, got 'fast'"):
        jb.Session(builtin_model("juno"), async_runs="fast")


def test_native_run_async_hundred_in_flight_equal_run():
    with jb.Session(builtin_model("juno"), intra_op_threads=2, async_runs="native", shared=False) as s:
        assert s.async_mode == "native"
        check_in_flight(s, [[builtin_input("juno", 8, seed=i)] for i in range(5)])


def test_one_intra_op_thread_falls_back_to_the_pool_and_says_so_at_debug_level(caplog):
    before = jb.get_log_level()
    jb.set_log_level("verbose")
    try:
        with caplog.at_level(logging.DEBUG, logger="juno_bridge.async"):
            s = jb.Session(builtin_model("juno"), intra_op_threads=1, async_runs="native", shared=False)
    finally:
        jb.set_log_level(before)
    lines = [r for r in caplog.records if r.name == "juno_bridge.async"]
    assert len(lines) == 1 and lines[0].levelno == logging.DEBUG
    assert "worker pool" in lines[0].getMessage() and "RunAsync" in lines[0].getMessage()
    with s:
        assert s.async_mode == "pool"
        check_in_flight(s, [[builtin_input("juno", 8, seed=i)] for i in range(3)])


def test_async_mode_of_backends_without_an_asynchronous_call():
    with jb.Session("python:helpers.pyalgos:reco") as s:
        assert s.async_mode == "pool"


def test_hundred_in_flight_on_a_python_model():
    rng = np.random.default_rng(1)
    with jb.Session("python:helpers.pyalgos:reco") as s:
        check_in_flight(s, [{"pmt": rng.standard_normal((3, 2, 16)).astype(np.float32)} for _ in range(4)])


def test_out_buffers_are_written_in_place(add_f32):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    outs = [np.zeros((2, 3), np.float32) for _ in range(20)]
    with jb.Session(add_f32) as s:
        futures = [s.run_async({"a": x, "b": x + i}, out={"c": outs[i]}) for i in range(20)]
        for i, f in enumerate(futures):
            assert f.result(timeout=60)["c"] is outs[i]
            np.testing.assert_array_equal(outs[i], 2 * x + i)


@pytest.mark.parametrize("threads, mode", [(1, "pool"), (2, "native")])
def test_out_buffers_and_allocated_outputs_in_one_call(threads, mode, multi_io_model):
    with jb.Session(multi_io_model, intra_op_threads=threads, async_runs="native", shared=False) as s:
        assert s.async_mode == mode
        inputs = {"a": np.full((2, 3), 1, np.float32), "b": np.full((2, 3), 2, np.float32),
                  "c": np.arange(3, dtype=np.float32)}
        want = s.run(inputs)
        first = s.outputs()[0].name
        outs = [{first: np.zeros_like(want[first])} for _ in range(20)]
        futures = [s.run_async(inputs, out=outs[i]) for i in range(20)]
        for i, f in enumerate(futures):
            got = f.result(timeout=60)
            assert list(got) == list(want) and got[first] is outs[i][first]
            for name in want:
                np.testing.assert_array_equal(got[name], want[name])


def test_an_error_inside_a_native_run_reaches_the_future_and_the_session_runs_on(model_path):
    # The dims are symbolic and differ, so the core passes the call and ONNX Runtime's Add refuses it.
    f32 = np.float32
    model = model_path("add_unbroadcastable", onnx_models.make_model,
                       [onnx_models.helper.make_node("Add", ["a", "b"], ["c"])],
                       [onnx_models.value_info("a", f32, ("n",)), onnx_models.value_info("b", f32, ("m",))],
                       [onnx_models.value_info("c", f32, (None,))])
    with jb.Session(model, intra_op_threads=2, async_runs="native", shared=False) as s:
        assert s.async_mode == "native"
        bad = [s.run_async({"a": np.ones(3, f32), "b": np.ones(4, f32)}) for _ in range(20)]
        for f in bad:
            with pytest.raises(jb.RunError, match="running the model"):
                f.result(timeout=60)
        np.testing.assert_array_equal(s.run_async([np.ones(3, f32)] * 2).result(timeout=60)["c"], [2, 2, 2])


def test_a_non_tensor_output_of_a_native_run_is_an_error_through_the_future(model_path):
    with jb.Session(model_path("sequence_output", onnx_models.sequence_output), intra_op_threads=2,
                    async_runs="native", shared=False) as s:
        assert s.async_mode == "native"
        with pytest.raises(jb.UnsupportedError,
                           match=r"output 'seq' is of type seq\(tensor\(float\)\).*outputs=\['y'\]"):
            s.run_async([np.ones(3, np.float32)]).result(timeout=60)
        y = s.run_async([np.ones(3, np.float32)], outputs=["y"]).result(timeout=60)["y"]
        np.testing.assert_array_equal(y, np.ones(3, np.float32))


def test_usable_from_asyncio(add_f32):
    x = np.ones((2, 3), np.float32)

    async def main(s):
        results = await asyncio.gather(*(asyncio.wrap_future(s.run_async([x, x * k])) for k in range(10)))
        return [r["c"] for r in results]

    with jb.Session(add_f32) as s:
        for k, c in enumerate(asyncio.run(main(s))):
            np.testing.assert_array_equal(c, x + x * k)


def test_errors_come_back_through_the_future(add_f32):
    with jb.Session(add_f32) as s:
        future = s.run_async({"a": np.ones((2, 3), np.float64), "b": np.ones((2, 3), np.float32)})
        with pytest.raises(jb.InputTypeError, match="expected dtype float32, got float64"):
            future.result(timeout=60)
    closed = jb.Session(add_f32)
    closed.close()
    with pytest.raises(jb.InvalidArgumentError, match="closed"):
        closed.run_async([np.ones((2, 3), np.float32)] * 2)


def test_the_interpreter_waits_for_runs_in_flight_at_exit():
    """Completions of runs still in flight at exit need the interpreter: it waits for them, then exits 0."""
    code = (
        "import atexit\n"
        "futures = []\n"
        "atexit.register(lambda: print('done', sum(f.done() for f in futures), flush=True))  # runs last\n"
        "import juno_bridge as jb\n"
        "from juno_bridge.demo.models.builtin import builtin_input, builtin_model\n"
        "s = jb.Session(builtin_model('juno'), intra_op_threads=2, async_runs='native')\n"
        "assert s.async_mode == 'native'\n"
        "futures += [s.run_async([builtin_input('juno', 16)]) for _ in range(40)]\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["done", "40"]


def test_sessions_released_while_the_gil_is_held_after_native_runs(add_f32):
    """The runtime's threads complete runs with Python thread states of their own; they end when the
    session is released, here by a Binding dropped last (its release holds the GIL): no deadlock, no
    crash, 20 sessions in turn."""
    code = (
        "import numpy as np, juno_bridge as jb\n"
        "x = np.arange(6, dtype=np.float32).reshape(2, 3)\n"
        "for i in range(20):\n"
        f"    s = jb.Session({str(add_f32)!r}, intra_op_threads=2, async_runs='native', shared=False)\n"
        "    assert s.async_mode == 'native'\n"
        "    futures = [s.run_async([x, x]) for _ in range(10)]\n"
        "    assert all(np.array_equal(f.result(timeout=60)['c'], 2 * x) for f in futures)\n"
        "    b = s.bind({'a': x, 'b': x}, out={'c': np.empty_like(x)})\n"
        "    s.close()\n"
        "    del b\n"
        "print('ok', flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.split() == ["ok"], done.stderr


def test_close_waits_for_the_runs_already_made(add_f32):
    x = np.ones((2, 3), np.float32)
    s = jb.Session(add_f32)
    futures = [s.run_async([x, x]) for _ in range(50)]
    s.close()
    assert all(f.done() and f.exception() is None for f in futures)


CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p)


def load_run_async():
    lib = jb_c.load()
    lib.jb_session_run_async.restype = ctypes.c_int
    lib.jb_session_run_async.argtypes = [ctypes.c_void_p, ctypes.POINTER(jb_c.TensorView), ctypes.c_size_t,
                                         ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(jb_c.TensorView),
                                         ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t, CALLBACK,
                                         ctypes.c_void_p]
    return lib


def test_c_abi_run_async_allocated_outputs_come_in_outputs_and_owned(add_f32):
    lib = load_run_async()
    session = ctypes.c_void_p()
    assert lib.jb_session_open(str(add_f32).encode(), None, ctypes.byref(session)) == jb_c.OK
    finished = threading.Event()
    got = []

    @CALLBACK
    def done(user_data, status, message):
        got.append((status, message.decode()))
        finished.set()

    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    ins = (jb_c.TensorView * 2)(jb_c.view(x.ctypes.data, jb_c.FLOAT32, x.shape),
                                jb_c.view(x.ctypes.data, jb_c.FLOAT32, x.shape))
    outs = (jb_c.TensorView * 1)(jb_c.view(None, jb_c.FLOAT32, ()))
    owned = (ctypes.c_void_p * 1)()
    index = (ctypes.c_int32 * 1)(0)
    try:
        assert lib.jb_session_run_async(session, ins, 2, index, outs, owned, 1, done, None) == jb_c.OK
        assert finished.wait(60) and got == [(jb_c.OK, "")]
        assert owned[0] and outs[0].data and outs[0].rank == 2 and list(outs[0].shape[:2]) == [2, 3]
        result = np.ctypeslib.as_array(ctypes.cast(outs[0].data, ctypes.POINTER(ctypes.c_float)), (2, 3))
        np.testing.assert_array_equal(result, 2 * x)
        lib.jb_tensor_free(owned[0])
    finally:
        lib.jb_session_close(session)


def test_c_abi_run_async_hundred_in_flight(add_f32):
    lib = load_run_async()
    callback_type = CALLBACK
    session = ctypes.c_void_p()
    assert lib.jb_session_open(str(add_f32).encode(), None, ctypes.byref(session)) == jb_c.OK, jb_c.last_error(lib)
    n = 100
    results, lock, all_done = {}, threading.Lock(), threading.Event()

    @callback_type
    def done(user_data, status, message):
        with lock:
            results[user_data] = (status, message.decode())
            if len(results) == n:
                all_done.set()

    a = [np.full((2, 3), i, np.float32) for i in range(n)]
    b = np.ones((2, 3), np.float32)
    c = [np.zeros((2, 3), np.float32) for _ in range(n)]
    keep = []  # every array the calls point at, alive until their callbacks
    try:
        for i in range(n):
            ins = (jb_c.TensorView * 2)(jb_c.view(a[i].ctypes.data, jb_c.FLOAT32, a[i].shape),
                                        jb_c.view(b.ctypes.data, jb_c.FLOAT32, b.shape))
            outs = (jb_c.TensorView * 1)(jb_c.view(c[i].ctypes.data, jb_c.FLOAT32, c[i].shape))
            index = (ctypes.c_int32 * 1)(0)
            keep.append((ins, outs, index))
            status = lib.jb_session_run_async(session, ins, 2, index, outs, None, 1, done, i + 1)
            assert status == jb_c.OK, jb_c.last_error(lib)
        assert all_done.wait(120)
    finally:
        lib.jb_session_close(session)  # waits for the runs in flight
    assert sorted(results) == list(range(1, n + 1))
    assert all(r == (jb_c.OK, "") for r in results.values()), results
    for i in range(n):
        np.testing.assert_array_equal(c[i], a[i] + 1)


def test_c_abi_async_mode_and_a_completion_that_closes_the_session(add_f32):
    """The completion runs on one of ONNX Runtime's threads; closing the last session there must not make
    the runtime release (join) the pool that thread belongs to from inside it."""
    lib = load_run_async()
    lib.jb_session_async_mode.restype = ctypes.c_char_p
    lib.jb_session_async_mode.argtypes = [ctypes.c_void_p]
    options = lib.jb_options_new()
    for key, value in ((b"intra_op_threads", b"2"), (b"shared", b"0"), (b"async_runs", b"native")):
        assert lib.jb_options_set(options, key, value) == jb_c.OK
    session = ctypes.c_void_p()
    before = lib.jb_open_backend_count()
    assert lib.jb_session_open(str(add_f32).encode(), options, ctypes.byref(session)) == jb_c.OK
    lib.jb_options_free(options)
    assert lib.jb_session_async_mode(session) == b"native"
    finished, got = threading.Event(), []

    @CALLBACK
    def done(user_data, status, message):
        got.append((status, threading.current_thread() is threading.main_thread()))
        lib.jb_session_close(session)
        finished.set()

    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    c = np.zeros((2, 3), np.float32)
    ins = (jb_c.TensorView * 2)(*[jb_c.view(x.ctypes.data, jb_c.FLOAT32, x.shape)] * 2)
    outs = (jb_c.TensorView * 1)(jb_c.view(c.ctypes.data, jb_c.FLOAT32, c.shape))
    index = (ctypes.c_int32 * 1)(0)
    assert lib.jb_session_run_async(session, ins, 2, index, outs, None, 1, done, None) == jb_c.OK
    assert finished.wait(60) and got == [(jb_c.OK, False)]
    np.testing.assert_array_equal(c, 2 * x)
    assert lib.jb_open_backend_count() == before
    assert lib.jb_session_async_mode(None) == b"" and jb_c.last_error(lib)[0] == jb_c.INVALID_ARGUMENT


def test_c_abi_run_async_refuses_a_bad_call_at_once(add_f32):
    lib = jb_c.load()
    session = ctypes.c_void_p()
    assert lib.jb_session_open(str(add_f32).encode(), None, ctypes.byref(session)) == jb_c.OK
    try:
        lib.jb_session_run_async.restype = ctypes.c_int
        x = np.ones((2, 3), np.float32)
        ins = (jb_c.TensorView * 1)(jb_c.view(x.ctypes.data, jb_c.FLOAT32, x.shape))
        outs = (jb_c.TensorView * 1)(jb_c.view(x.ctypes.data, jb_c.FLOAT32, x.shape))
        index = (ctypes.c_int32 * 1)(0)
        status = lib.jb_session_run_async(session, ins, ctypes.c_size_t(1), index, outs, None, ctypes.c_size_t(1),
                                          None, None)
        assert status == jb_c.INVALID_ARGUMENT and "'done'" in jb_c.last_error(lib)[1]
    finally:
        lib.jb_session_close(session)
