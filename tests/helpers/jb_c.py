"""The installed libjuno_bridge.so through ctypes, declared once for the C ABI tests (juno_bridge.h and
hits.h spelled in ctypes)."""
from __future__ import annotations

import ctypes
import os
from ctypes import POINTER, c_char_p, c_float, c_int, c_int32, c_int64, c_size_t, c_uint32, c_void_p

MAX_RANK = 16
OK, INVALID_ARGUMENT, INPUT, INPUT_TYPE, MODEL_LOAD, BACKEND_UNAVAILABLE, RUNTIME, UNSUPPORTED = range(8)
STATUSES = set(range(8))
FLOAT32, INT32, INT64 = 1, 6, 7


class TensorView(ctypes.Structure):
    _fields_ = [("data", c_void_p), ("dtype", c_int32), ("rank", c_int32), ("shape", c_int64 * MAX_RANK),
                ("device", c_int32), ("device_id", c_int32)]


def view(data, dtype: int, shape, rank: int | None = None) -> TensorView:
    """A jb_tensor_view of host memory; `rank` may differ from len(shape) (the dims past 16 are dropped)."""
    v = TensorView()
    v.data = data
    v.dtype = dtype
    v.rank = len(shape) if rank is None else rank
    for i, d in enumerate(list(shape)[:MAX_RANK]):
        v.shape[i] = d
    return v


class TensorInfo(ctypes.Structure):
    _fields_ = [("name", c_char_p), ("dtype", c_int32), ("rank", c_int32), ("shape", POINTER(c_int64)),
                ("dim_names", POINTER(c_char_p)), ("type_name", c_char_p)]


LOG_CALLBACK = ctypes.CFUNCTYPE(None, c_void_p, c_int32, c_char_p, c_char_p)


def library_path() -> str:
    """The installed library, or $JUNO_BRIDGE_TEST_LIBRARY (another build of it: an older commit, a
    sanitizer build), loaded without importing juno_bridge so that no other copy is in the process."""
    if os.environ.get("JUNO_BRIDGE_TEST_LIBRARY"):
        return os.environ["JUNO_BRIDGE_TEST_LIBRARY"]
    from juno_bridge import paths
    return str(paths.lib_dir() / "libjuno_bridge.so")


def load() -> ctypes.CDLL:
    lib = ctypes.CDLL(library_path())
    session, options, tensor = c_void_p, c_void_p, c_void_p
    for name, restype, argtypes in [
        ("jb_last_error_message", c_char_p, []),
        ("jb_last_error_code", c_int, []),
        ("jb_options_new", options, []),
        ("jb_options_free", None, [options]),
        ("jb_options_set", c_int, [options, c_char_p, c_char_p]),
        ("jb_session_open", c_int, [c_char_p, options, POINTER(session)]),
        ("jb_session_close", None, [session]),
        ("jb_session_backend", c_char_p, [session]),
        ("jb_session_providers", c_char_p, [session]),
        ("jb_session_backend_id", ctypes.c_uint64, [session]),
        ("jb_open_backend_count", c_int64, []),
        ("jb_session_num_inputs", c_size_t, [session]),
        ("jb_session_num_outputs", c_size_t, [session]),
        ("jb_session_input_info", c_int, [session, c_size_t, POINTER(TensorInfo)]),
        ("jb_session_run", c_int, [session, POINTER(TensorView), c_size_t, POINTER(TensorView), c_size_t]),
        ("jb_session_run_outputs", c_int, [session, POINTER(TensorView), c_size_t, POINTER(c_int32),
                                           POINTER(TensorView), POINTER(tensor), c_size_t]),
        ("jb_tensor_free", None, [tensor]),
        ("jb_session_empty", c_int, [session, c_int32, POINTER(c_int64), c_int32, POINTER(TensorView),
                                     POINTER(tensor)]),
        ("jb_scatter_hits", c_int, [POINTER(TensorView)] * 4 + [c_float]),
        ("jb_set_log_callback", None, [LOG_CALLBACK, c_void_p]),
        ("jb_set_log_level", c_int, [c_int32]),
        ("jb_get_log_level", c_int32, []),
        ("jb_onnxruntime_info", c_int, [c_char_p, POINTER(c_char_p), POINTER(c_char_p), POINTER(c_uint32),
                                        POINTER(c_char_p)]),
    ]:
        if hasattr(lib, name):  # an older build may lack one: a test that calls it fails there
            f = getattr(lib, name)
            f.restype, f.argtypes = restype, argtypes
    return lib


def last_error(lib) -> tuple[int, str]:
    return lib.jb_last_error_code(), lib.jb_last_error_message().decode()


def run_isolated(code: str, timeout: float = 120):
    """Runs `code` in a fresh Python with this module importable, so a crash of the library is a failed
    assertion with its output, not a dead test run."""
    import subprocess
    import sys
    from pathlib import Path

    # The child imports this module as `jb_c`, from its own folder.
    prelude = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=timeout)


def run_with_stale_output_views(model, batch: int, features: int) -> dict:
    """Runs `model` (float32 x[batch, features] in, its first output allocated by the backend) through
    jb_session_run_outputs in a child process, the output's view holding what a reused view may hold
    (device JB_DEVICE_CUDA, device_id 7, a stale rank and shape) beside its NULL data: the status, the
    error, and the view as the call left it (device, device_id, rank)."""
    import json
    import textwrap

    code = textwrap.dedent(f"""
        import json, ctypes
        from jb_c import *
        lib = load()
        s = ctypes.c_void_p()
        assert lib.jb_session_open({str(model).encode()!r}, None, ctypes.byref(s)) == OK, last_error(lib)
        x = (ctypes.c_float * {batch * features})()
        inp = view(ctypes.addressof(x), FLOAT32, [{batch}, {features}])
        out = view(None, FLOAT32, [3, 3, 3])
        out.device, out.device_id = 1, 7
        index = (ctypes.c_int32 * 1)(0)
        owned = (ctypes.c_void_p * 1)()
        status = lib.jb_session_run_outputs(s, ctypes.byref(inp), 1, index, ctypes.byref(out), owned, 1)
        lib.jb_tensor_free(owned[0])
        lib.jb_session_close(s)
        print(json.dumps({{"status": status, "error": last_error(lib), "device": out.device,
                          "device_id": out.device_id, "rank": out.rank}}))
        """)
    result = run_isolated(code)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.splitlines()[-1])
