"""A worker process for the C ABI fuzz tests (test_c_abi_fuzz.py): reads one example per line (JSON) on
stdin, makes the calls through ctypes against the installed libjuno_bridge.so, answers one JSON line
with what came back. A crash kills only this process; the test reports the example and restarts it.

    python -m helpers.fuzz_worker MODEL   (from tests/)
MODEL: x float32 [batch, 8] -> y float32 [batch, 4], s float32 [batch] (native_build.write_mlp_model)."""
from __future__ import annotations

import array
import ctypes
import json
import sys
import threading

from helpers.jb_c import MAX_RANK, OK, TensorView, last_error, load

POOL_BYTES = 1 << 16
lib = load()
model = sys.argv[1].encode()
# One pool of memory that every non-NULL view points into (at an offset): views overlap, misalign and
# read whatever earlier calls wrote there. 64-byte aligned base so offsets alone decide alignment.
_raw = ctypes.create_string_buffer(POOL_BYTES + 64)
BASE = (ctypes.addressof(_raw) + 63) // 64 * 64


# int32 words 0..40, every 37th -1: as pmt ids most are in range, some are not; as floats, tiny numbers.
PATTERN = array.array("i", [(i * 7) % 41 if i % 37 != 36 else -1 for i in range(POOL_BYTES // 4)]).tobytes()


def reset_pool():
    ctypes.memmove(BASE, PATTERN, POOL_BYTES)


def make_view(spec) -> TensorView:
    v = TensorView()
    v.data = None if spec["data"] is None else BASE + spec["data"]
    v.dtype, v.rank = spec["dtype"], spec["rank"]
    v.device, v.device_id = spec.get("device", 0), spec.get("device_id", 0)
    for i, d in enumerate(spec["shape"][:MAX_RANK]):
        v.shape[i] = d
    return v


def view_state(v: TensorView):
    return [v.data, v.dtype, v.rank, list(v.shape), v.device, v.device_id]


def pool_bytes() -> bytes:
    return ctypes.string_at(BASE, POOL_BYTES)


shared = ctypes.c_void_p()
if lib.jb_session_open(model, None, ctypes.byref(shared)) != OK:
    raise SystemExit(f"cannot open {model!r}: {last_error(lib)}")


def do_run(ex):
    inputs = (TensorView * max(1, len(ex["inputs"])))(*[make_view(s) for s in ex["inputs"]])
    outputs = (TensorView * max(1, len(ex["outputs"])))(*[make_view(s) for s in ex["outputs"]])
    before = [view_state(v) for v in outputs[:len(ex["outputs"])]]
    if ex["api"] == "run":
        status = lib.jb_session_run(shared, inputs, len(ex["inputs"]), outputs, len(ex["outputs"]))
        owned_freed = 0
    else:
        n = len(ex["outputs"])
        index = (ctypes.c_int32 * max(1, n))(*ex["index"])
        owned = (ctypes.c_void_p * max(1, n))()
        status = lib.jb_session_run_outputs(shared, inputs, len(ex["inputs"]), index, outputs, owned, n)
        owned_freed = sum(1 for o in owned[:n] if o)
        for o in owned[:n]:
            lib.jb_tensor_free(o)
    code, message = last_error(lib)
    return {"status": status, "code": code, "message": message, "outputs_before": before,
            "outputs_after": [view_state(v) for v in outputs[:len(ex["outputs"])]], "owned": owned_freed}


def do_scatter(ex):
    views = [None if s is None else make_view(s) for s in ex["views"]]
    before = pool_bytes()
    status = lib.jb_scatter_hits(*[None if v is None else ctypes.byref(v) for v in views], ctypes.c_float(ex["empty"]))
    code, message = last_error(lib)
    return {"status": status, "code": code, "message": message, "pool_changed": pool_bytes() != before}


def do_options(ex):
    options = lib.jb_options_new()
    statuses = []
    for key, value in ex["pairs"]:
        statuses.append(lib.jb_options_set(options, key.encode("utf-8", "surrogatepass"),
                                           value.encode("utf-8", "surrogatepass")))
    s = ctypes.c_void_p()
    status = lib.jb_session_open(model, options, ctypes.byref(s))
    code, message = last_error(lib)
    handle_set = bool(s.value)
    if s.value:
        lib.jb_session_close(s)
    lib.jb_options_free(options)
    return {"set": statuses, "status": status, "code": code, "message": message, "handle": handle_set}


def run_sequence(ops, results):
    """One thread's calls on its own two handle slots and the shared session. A closed slot is NULL."""
    slots = [ctypes.c_void_p(), ctypes.c_void_p()]
    x = (ctypes.c_float * 16)(*range(16))
    for op, k in ops:
        s = slots[k]
        handle = shared if op == "run_shared" else s
        if op == "open":
            if s.value:
                lib.jb_session_close(s)
            status = lib.jb_session_open(model, None, ctypes.byref(s))
        elif op == "close":
            lib.jb_session_close(s)
            s.value = None
            status = OK
        elif op in ("run", "run_shared"):
            y = (ctypes.c_float * 8)()
            t = (ctypes.c_float * 2)()
            inp = TensorView(ctypes.addressof(x), 1, 2)
            inp.shape[0], inp.shape[1] = 2, 8
            outs = (TensorView * 2)(TensorView(ctypes.addressof(y), 1, 2), TensorView(ctypes.addressof(t), 1, 1))
            outs[0].shape[0], outs[0].shape[1], outs[1].shape[0] = 2, 4, 2
            status = lib.jb_session_run(handle, ctypes.byref(inp), 1, outs, 2)
        elif op == "num_inputs":
            n = lib.jb_session_num_inputs(s)
            status = lib.jb_last_error_code()
            if status == OK and n != 1:
                status = -1
        else:  # backend
            name = lib.jb_session_backend(s)
            status = lib.jb_last_error_code()
            if status == OK and name != b"onnxruntime":
                status = -1
        results.append([op, k, bool(handle.value), status, lib.jb_last_error_message().decode()])
    for s in slots:
        lib.jb_session_close(s)


def do_sequence(ex):
    per_thread = [[] for _ in ex["threads"]]
    threads = [threading.Thread(target=run_sequence, args=(ops, out)) for ops, out in zip(ex["threads"], per_thread)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"results": per_thread}


def do_empty(ex):
    shape = (ctypes.c_int64 * MAX_RANK)(*ex["shape"])
    v, owned = TensorView(), ctypes.c_void_p(1)
    status = lib.jb_session_empty(shared, ex["dtype"], None if ex["shape_null"] else shape, ex["rank"],
                                  ctypes.byref(v), ctypes.byref(owned))
    code, message = last_error(lib)
    nbytes = ex["nbytes"]
    if status == OK and nbytes:  # the first and the last byte are the caller's (ASan: not past the block)
        ctypes.memset(v.data, 0x5A, 1)
        ctypes.memset(v.data + nbytes - 1, 0x5A, 1)
    result = {"status": status, "code": code, "message": message, "owned": owned.value is not None,
              "view": view_state(v) if status == OK else None}
    lib.jb_tensor_free(owned)
    return result


HANDLERS = {"run": do_run, "scatter": do_scatter, "options": do_options, "sequence": do_sequence, "empty": do_empty}

for line in sys.stdin:
    example = json.loads(line)
    reset_pool()
    print(json.dumps(HANDLERS[example["op"]](example)), flush=True)
