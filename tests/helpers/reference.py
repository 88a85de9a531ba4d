"""The yardstick: onnxruntime's own Python API on the same model with the same settings, and a bitwise
comparison (floats compared by their bits, so NaN == NaN and -0.0 != 0.0)."""
from __future__ import annotations

import ctypes

import ml_dtypes
import numpy as np
import onnxruntime as ort
from onnx import TensorProto

import juno_bridge as jb

# One intra-op and one inter-op thread on both sides: ONNX Runtime's results do not depend on thread
# counts for most kernels, but reductions split across threads may round differently.
THREADS = {"intra_op_threads": 1, "inter_op_threads": 1}
BFLOAT16 = np.dtype(ml_dtypes.bfloat16)


def reference_session(model, optimization: str = "all") -> ort.InferenceSession:
    """onnxruntime.InferenceSession with the settings `bridge_session` uses."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
                                   "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                                   "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                                   "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[optimization]
    source = str(model) if not isinstance(model, (bytes, bytearray)) else bytes(model)
    return ort.InferenceSession(source, so, providers=["CPUExecutionProvider"])


def bridge_session(model, optimization: str = "all", **options) -> jb.Session:
    return jb.Session(model, optimization=optimization, **THREADS, **options)


def reference_run(model, feeds: dict, optimization: str = "all") -> dict:
    sess = reference_session(model, optimization)
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def reference_run_bfloat16(sess: ort.InferenceSession, feeds: dict) -> dict:
    """sess.run for models with bfloat16 tensors, which onnxruntime's Python API takes and gives only as
    OrtValues (it has no numpy type for them): ml_dtypes.bfloat16 inputs go in as their uint16 bits labelled
    bfloat16, and bfloat16 outputs are read from the OrtValue's own memory."""
    def value(a):
        a = np.ascontiguousarray(a)
        if a.dtype == BFLOAT16:
            return ort.OrtValue.ortvalue_from_numpy_with_onnx_type(a.view(np.uint16), TensorProto.BFLOAT16)
        return ort.OrtValue.ortvalue_from_numpy(a)

    names = [o.name for o in sess.get_outputs()]
    results = sess.run_with_ort_values(names, {k: value(a) for k, a in feeds.items()})
    got = {}
    for name, v in zip(names, results):
        if v.data_type() != "tensor(bfloat16)":
            got[name] = v.numpy()
            continue
        shape = tuple(v.shape())
        n = int(np.prod(shape, dtype=np.int64))
        raw = ctypes.string_at(v.data_ptr(), 2 * n) if n else b""
        got[name] = np.frombuffer(raw, np.uint16).reshape(shape).view(BFLOAT16).copy()
    return got


def bits(a: np.ndarray) -> np.ndarray:
    """The array's raw bits as unsigned integers (bool and integers are returned as they are)."""
    a = np.asarray(a)
    if a.dtype.kind == "f" or a.dtype == BFLOAT16:
        return a.view(f"u{a.dtype.itemsize}")
    return a


def assert_bitwise_equal(got: np.ndarray, expected: np.ndarray, what: str = "") -> None:
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.dtype == expected.dtype, f"{what}: dtype {got.dtype} != {expected.dtype}"
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    same = bits(got) == bits(expected)
    assert same.all(), (f"{what}: {np.count_nonzero(~same)} of {same.size} elements differ; first at "
                        f"{np.argwhere(~same)[0].tolist()}: {got[~same][0]!r} != {expected[~same][0]!r}")


def assert_results_equal(got: dict, expected: dict) -> None:
    """Same output names in the same order, each output bitwise equal."""
    assert list(got) == list(expected)
    for name in expected:
        assert_bitwise_equal(got[name], expected[name], name)


def sentinel_like(a: np.ndarray) -> np.ndarray:
    """An array of a's shape and dtype filled with a value no test computes, to prove it was overwritten."""
    out = np.empty(a.shape, a.dtype)
    if out.dtype.kind == "f" or out.dtype == BFLOAT16:
        out.fill(np.nan)
        out.view(f"u{out.dtype.itemsize}")[...] |= 1  # a NaN payload the runtime never produces
    elif out.dtype.kind == "b":
        out.fill(True)
    else:
        out.fill(np.iinfo(out.dtype).max)
    return out
