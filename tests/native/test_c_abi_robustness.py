"""The C ABI's promises at its edges, each checked in a child process (a crash is a failure with its
output): NULL handles record JB_ERROR_INVALID_ARGUMENT, counts are checked before the caller's arrays
are read, ranks and shapes that overflow are refused by name, and a failed call leaves the caller's
views as they were."""
from __future__ import annotations

import json
import textwrap

import pytest

from helpers.jb_c import INVALID_ARGUMENT, OK, run_isolated, run_with_stale_output_views
from helpers.native_build import write_mlp_model


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_mlp_model(tmp_path_factory.mktemp("model") / "mlp.onnx")


def check(code: str) -> dict:
    """Runs `code` (which sets `result`) after opening `lib`; returns `result`."""
    result = run_isolated("import json, ctypes\nfrom jb_c import *\nlib = load()\n" + textwrap.dedent(code) +
                          "\nprint(json.dumps(result))")
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.splitlines()[-1])


def open_session(model) -> str:
    return f"""
s = ctypes.c_void_p()
assert lib.jb_session_open({str(model).encode()!r}, None, ctypes.byref(s)) == OK, last_error(lib)
"""


@pytest.mark.parametrize("function, answer", [("jb_session_backend", None), ("jb_session_num_inputs", 0),
                                              ("jb_session_num_outputs", 0)])
def test_a_null_session_handle_records_invalid_argument(function, answer):
    result = check(f"""
opts = lib.jb_options_new()
assert lib.jb_options_set(opts, b"intra_op_threads", b"1") == OK  # the last call succeeded: code 0
value = lib.{function}(None)
result = {{"value": value.decode() if isinstance(value, bytes) else value, "error": last_error(lib)}}
""")
    assert result["value"] in ("", 0)
    code, message = result["error"]
    assert code == 1 and "session" in message and "NULL" in message, result


def test_the_counts_of_a_session_clear_the_last_error(model):
    result = check(open_session(model) + """
lib.jb_session_num_inputs(None)
n = lib.jb_session_num_inputs(s)
result = {"n": n, "error": last_error(lib), "backend": lib.jb_session_backend(s).decode()}
""")
    assert result == {"n": 1, "error": [0, ""], "backend": "onnxruntime"}


def test_run_outputs_refuses_more_outputs_than_the_model_has_before_reading_the_arrays(model):
    # One view and one index, but a count of 2**40: reading the arrays first runs far past them.
    result = check(open_session(model) + """
x = (ctypes.c_float * 8)()
inp = view(ctypes.addressof(x), FLOAT32, [1, 8])
index = (ctypes.c_int32 * 1)(0)
out = (TensorView * 1)()
status = lib.jb_session_run_outputs(s, ctypes.byref(inp), 1, index, out, None, 2**40)
result = {"status": status, "error": last_error(lib)}
""")
    assert result["status"] == 1, result
    assert "1099511627776" in result["error"][1] and "2 output(s)" in result["error"][1]


def test_an_output_whose_element_count_overflows_is_refused_and_its_view_left_untouched(model):
    # [2^62, 4] wraps to 0 elements in 64 bits: it must not pass for an empty output.
    result = check(open_session(model) + """
x = (ctypes.c_float * 8)()
s_out = (ctypes.c_float * 1)()
inp = view(ctypes.addressof(x), FLOAT32, [1, 8])
outs = (TensorView * 2)(view(None, FLOAT32, [2**62, 4]), view(ctypes.addressof(s_out), FLOAT32, [1]))
status = lib.jb_session_run(s, ctypes.byref(inp), 1, outs, 2)
result = {"status": status, "error": last_error(lib), "data": outs[0].data}
""")
    assert result["status"] != 0 and result["data"] is None, result
    assert "'y'" in result["error"][1]


HITS = """
ids = (ctypes.c_int32 * 2)(0, 1)
npe = (ctypes.c_float * 2)(1.0, 2.0)
tim = (ctypes.c_float * 2)(3.0, 4.0)
slot = (ctypes.c_float * 8)()
def hits(ids_rank=1, npe_rank=1, time_rank=1, slot_rank=2, slot_shape=(2, 4), n=2):
    v = [view(ctypes.addressof(ids), INT32, [n], ids_rank), view(ctypes.addressof(npe), FLOAT32, [n], npe_rank),
         view(ctypes.addressof(tim), FLOAT32, [n], time_rank),
         view(ctypes.addressof(slot), FLOAT32, list(slot_shape), slot_rank)]
    status = lib.jb_scatter_hits(*(ctypes.byref(x) for x in v), ctypes.c_float(0))
    return [status, lib.jb_last_error_message().decode()]
"""


@pytest.mark.parametrize("argument", ["ids", "npe", "time", "slot"])
@pytest.mark.parametrize("rank", [2**31 - 1, 17, -1])
def test_scatter_hits_refuses_a_rank_outside_the_view_by_name(argument, rank):
    result = check(HITS + f"result = hits({argument}_rank={rank})")
    status, message = result
    name = {"ids": "pmt_ids"}.get(argument, argument)
    assert status == 2 and name in message and f"invalid rank {rank}" in message, result


def test_scatter_hits_refuses_a_slot_whose_byte_count_overflows():
    status, message = check(HITS + "result = hits(slot_shape=(2**62, 2**62), n=0)")
    assert status == 2 and "too large" in message, (status, message)
    status, message = check(HITS + "result = hits(slot_shape=(1, 2**62), n=0)")  # 2^64 bytes: wraps to 0
    assert status == 2 and "too large" in message, (status, message)


def test_an_output_the_backend_allocates_is_host_memory_whatever_its_view_held(model):
    # Only data says "allocate": a view reused from a GPU run keeps its device, which is not read.
    result = run_with_stale_output_views(model, batch=2, features=8)
    assert result == {"status": OK, "error": [0, ""], "device": 0, "device_id": 0, "rank": 2}, result


def test_session_empty_hands_aligned_host_memory_that_outlives_the_session(model):
    result = check(open_session(model) + """
shape = (ctypes.c_int64 * 2)(3, 5)
v = TensorView()
owned = ctypes.c_void_p()
status = lib.jb_session_empty(s, FLOAT32, shape, 2, ctypes.byref(v), ctypes.byref(owned))
lib.jb_session_close(s)
data = (ctypes.c_float * 15).from_address(v.data)
data[:] = [1.0] * 15  # the caller's to fill, after close too
result = {"status": status, "aligned": v.data % 64, "dtype": v.dtype, "shape": list(v.shape[:v.rank]),
          "device": v.device, "sum": sum(data), "owned": bool(owned)}
lib.jb_tensor_free(owned)
""")
    assert result == {"status": OK, "aligned": 0, "dtype": 1, "shape": [3, 5], "device": 0, "sum": 15.0,
                      "owned": True}, result


@pytest.mark.parametrize("call, words", [
    ("lib.jb_session_empty(None, FLOAT32, shape, 2, ctypes.byref(v), ctypes.byref(owned))", "session"),
    ("lib.jb_session_empty(s, FLOAT32, shape, 2, None, ctypes.byref(owned))", "view"),
    ("lib.jb_session_empty(s, FLOAT32, shape, 2, ctypes.byref(v), None)", "owned"),
    ("lib.jb_session_empty(s, FLOAT32, None, 2, ctypes.byref(v), ctypes.byref(owned))", "shape"),
    ("lib.jb_session_empty(s, FLOAT32, shape, -1, ctypes.byref(v), ctypes.byref(owned))", "rank -1 is outside [0, 16]"),
    ("lib.jb_session_empty(s, FLOAT32, shape, 17, ctypes.byref(v), ctypes.byref(owned))", "rank 17 is outside [0, 16]"),
    ("lib.jb_session_empty(s, 99, shape, 2, ctypes.byref(v), ctypes.byref(owned))", "dtype undefined"),
])
def test_session_empty_refuses_bad_arguments_by_name_and_clears_owned(model, call, words):
    result = check(open_session(model) + f"""
shape = (ctypes.c_int64 * 2)(3, 5)
v = TensorView()
owned = ctypes.c_void_p(12345)
status = {call}
result = {{"status": status, "error": last_error(lib), "owned": owned.value}}
""")
    assert result["status"] == INVALID_ARGUMENT and words in result["error"][1], result
    passed_owned = not call.endswith("None)")
    assert result["owned"] == (None if passed_owned else 12345), result  # cleared whenever it was passed
