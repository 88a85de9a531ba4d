"""Zero-copy, proven by addresses and counters: out= writes into the caller's array, runtime-allocated outputs
are the runtime's own memory, inputs (numpy or any buffer-protocol object) are read where they lie, and the
per-event loop wraps nothing new once its buffers are bound."""
from __future__ import annotations

import array
import gc
import subprocess
import sys

import numpy as np
import pytest

import juno_bridge as jb
from helpers import onnx_models
from juno_bridge._core import RuntimeMemory
from helpers.reference import sentinel_like


def inputs(rows=4, cols=5):
    a = np.arange(rows * cols, dtype=np.float32).reshape(rows, cols)
    return a, a * 0.5 + 1


def test_out_buffer_is_the_callers_array_written_in_place(add_session):
    a, b = inputs()
    c = sentinel_like(a)
    address = c.ctypes.data
    result = add_session.run({"a": a, "b": b}, out={"c": c})
    assert result["c"] is c
    assert c.ctypes.data == address
    np.testing.assert_array_equal(c, a + b)  # every sentinel overwritten


def test_runtime_allocated_output_is_the_runtimes_memory_not_a_copy(add_session):
    a, b = inputs()
    c = add_session.run({"a": a, "b": b})["c"]
    assert isinstance(c.base, RuntimeMemory)
    assert c.base.address == c.ctypes.data  # the pointer ONNX Runtime returned is the array's data
    assert c.flags.c_contiguous and c.flags.writeable and c.flags.aligned
    np.testing.assert_array_equal(c, a + b)


def test_runtime_allocated_output_outlives_its_session(add_f32):
    a, b = inputs(64, 5)
    s = jb.Session(add_f32)
    c = s.run({"a": a, "b": b})["c"]
    s.close()
    del s
    gc.collect()
    np.testing.assert_array_equal(c, a + b)  # the array holds the runtime's memory alive


def test_inputs_are_read_where_the_caller_put_them(multi_io_model):
    s = jb.Session(multi_io_model, intra_op_threads=1)
    a, b, c = np.ones((2, 3), np.float32), np.full((2, 3), 2, np.float32), np.arange(3, dtype=np.float32)
    s.run({"a": a, "b": b, "c": c})
    assert s._stats()["input_addresses"] == [a.ctypes.data, b.ctypes.data, c.ctypes.data]
    a2 = a.copy()
    s.run([a2, b, c])  # by position, a new first buffer
    assert s._stats()["input_addresses"] == [a2.ctypes.data, b.ctypes.data, c.ctypes.data]


@pytest.mark.parametrize("in_place", [True, False], ids=["out=", "allocated"])
def test_a_thousand_runs_on_the_same_buffers_wrap_nothing_new(add_session, in_place):
    a, b = inputs()
    c = np.empty_like(a)
    out = {"c": c} if in_place else None
    add_session.run({"a": a, "b": b}, out=out)
    wrapped = add_session._stats()["tensors_wrapped"]
    assert wrapped == (3 if in_place else 2)  # each input, and the out= buffer, wrapped exactly once
    for _ in range(1000):
        add_session.run({"a": a, "b": b}, out=out)
    assert add_session._stats()["tensors_wrapped"] == wrapped
    # The counter does count: a new buffer is wrapped once, then reused.
    a2 = a.copy()
    add_session.run({"a": a2, "b": b}, out=out)
    add_session.run({"a": a2, "b": b}, out=out)
    assert add_session._stats()["tensors_wrapped"] == wrapped + 1
    assert add_session._stats()["input_addresses"][0] == a2.ctypes.data


def test_memoryview_and_array_array_inputs_are_viewed_not_copied(add_session, model_path):
    a, b = inputs(1, 6)
    raw = array.array("f", b.ravel().tolist())
    raw_address, _ = raw.buffer_info()
    with pytest.raises(jb.InputError, match="expected rank 2"):
        add_session.run({"a": memoryview(a), "b": raw})  # array.array is one-dimensional: seen as is, not reshaped
    result = add_session.run({"a": memoryview(a), "b": memoryview(raw).cast("B").cast("f", (1, 6))})
    assert add_session._stats()["input_addresses"] == [a.ctypes.data, raw_address]
    np.testing.assert_array_equal(result["c"], a + b)

    vector = jb.Session(model_path("identity_f32_vector", onnx_models.identity, np.float32, ("n",)))
    y = vector.run({"x": raw})["y"]
    assert vector._stats()["input_addresses"] == [raw_address]
    np.testing.assert_array_equal(y, np.frombuffer(raw, np.float32))


def test_bytearray_backed_output_buffer_is_written_in_place(add_session):
    a, b = inputs(2, 3)
    storage = bytearray(a.nbytes)
    out = memoryview(storage).cast("f", (2, 3))
    result = add_session.run({"a": a, "b": b}, out={"c": out})
    assert result["c"] is out
    np.testing.assert_array_equal(np.frombuffer(storage, np.float32).reshape(2, 3), a + b)


def test_zero_sized_batch_runs_and_allocates_an_empty_result(add_session):
    a = np.empty((0, 5), np.float32)
    c = add_session.run({"a": a, "b": a})["c"]
    assert c.shape == (0, 5) and c.dtype == np.float32
    assert add_session.run({"a": a, "b": a}, out={"c": np.empty((0, 5), np.float32)})["c"].shape == (0, 5)


PASSTHROUGH_CHILD = """
import gc, sys
import numpy as np
import juno_bridge as jb
s = jb.Session(sys.argv[1])
y = s.run({"x": np.arange(1 << 18, dtype=np.float32)})["x"]  # the caller drops its input at once
gc.collect()
junk = [np.full(1 << 18, -1, np.float32) for _ in range(20)]  # reuse the freed memory if it was freed
assert np.array_equal(y, np.arange(1 << 18, dtype=np.float32)), y[:4]
print("ok")
"""


def test_an_input_the_model_passes_through_is_returned_without_a_copy_and_kept_alive(tmp_path):
    from onnx import helper

    from helpers.onnx_models import make_model, save, value_info

    model = make_model([helper.make_node("Neg", ["x"], ["n"])], [value_info("x", np.float32, ("n",))],
                       [value_info("x", np.float32, ("n",)), value_info("n", np.float32, ("n",))])
    path = save(model, tmp_path, "passthrough")
    x = np.arange(6, dtype=np.float32)
    r = jb.Session(path).run({"x": x})
    # ONNX Runtime hands the input itself back: the output is the caller's memory, and holds the caller's array.
    assert r["x"].ctypes.data == x.ctypes.data == r["x"].base.address
    assert r["x"].base.aliased is x and r["n"].base.aliased is None
    # Dropping the input must not leave the output dangling (checked in a child: a regression would crash).
    proc = subprocess.run([sys.executable, "-c", PASSTHROUGH_CHILD, str(path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", (proc.returncode, proc.stderr[-2000:])
