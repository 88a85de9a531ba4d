"""Property tests: for every dtype numpy (with ml_dtypes' bfloat16) and ONNX share, random shapes and batch sizes
give the same bits as numpy and as onnxruntime's own Python API on the same model, with runtime-allocated and
in-place outputs."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import juno_bridge as jb
from helpers import onnx_models
from helpers.bridge_runs import run_both_ways
from helpers.reference import (BFLOAT16, assert_bitwise_equal, assert_results_equal, bridge_session,
                               reference_run_bfloat16, reference_session)

ALL_DTYPES = [np.dtype(d) for d in ("float16", "float32", "float64", "int8", "int16", "int32", "int64",
                                    "uint8", "uint16", "uint32", "uint64", "bool")] + [BFLOAT16]
ADD_DTYPES = [d for d in ALL_DTYPES if d.kind != "b" and d != BFLOAT16]  # ONNX Add has no bool, ORT's CPU no bfloat16
MATMUL_DTYPES = [np.dtype(d) for d in ("float16", "float32", "float64", "int32", "int64", "uint32", "uint64")]

batch = st.integers(0, 9)
width = st.integers(1, 17)


class Models:
    """One model file and one juno-bridge/onnxruntime session pair per (builder, args), made on first use."""

    def __init__(self, model_path):
        self.model_path = model_path
        self.cache = {}

    def get(self, name, builder, *args):
        if name not in self.cache:
            path = self.model_path(name, builder, *args)
            self.cache[name] = (bridge_session(path), reference_session(path))
        return self.cache[name]


@pytest.fixture(scope="module")
def models(model_path):
    return Models(model_path)


def arrays(dtype, shape, elements=None):
    """hypothesis' arrays, for bfloat16 too (which hypothesis does not know): any bits, or `elements` rounded."""
    if dtype != BFLOAT16:
        return hnp.arrays(dtype, shape, elements=elements)
    if elements is None:
        return hnp.arrays(np.uint16, shape).map(lambda a: a.view(BFLOAT16))
    return hnp.arrays(np.float32, shape, elements=elements).map(lambda a: a.astype(BFLOAT16))


def check(models_pair, feeds, numpy_expected=None, exact_numpy=True):
    """juno-bridge == onnxruntime bitwise (both ways of outputs); == numpy bitwise, or closely where the
    summation order is the library's choice (MatMul, Gemm)."""
    session, reference = models_pair
    names = [o.name for o in reference.get_outputs()]
    types = [o.type for o in reference.get_outputs()] + [str(a.dtype) for a in feeds.values()]
    if "tensor(bfloat16)" in types or "bfloat16" in types:
        expected = reference_run_bfloat16(reference, feeds)  # onnxruntime's Python API has no numpy bfloat16
    else:
        expected = dict(zip(names, reference.run(names, feeds)))
    got = run_both_ways(session, feeds, expected)
    assert_results_equal(got, expected)
    if numpy_expected is not None:
        for name, value in numpy_expected.items():
            if exact_numpy:
                assert_bitwise_equal(got[name], value, name)
            else:
                np.testing.assert_allclose(got[name], value, rtol=1e-2 if value.dtype == np.float16 else 1e-5,
                                           atol=1e-2 if value.dtype == np.float16 else 1e-5)
    return got


def test_supported_dtypes_are_exactly_those_numpy_and_onnx_share():
    assert sorted(jb.SUPPORTED_DTYPES) == sorted(str(d) for d in ALL_DTYPES)


@given(data=st.data(), dtype=st.sampled_from(ALL_DTYPES), rows=batch, cols=width)
def test_identity_returns_the_input_bits_for_every_dtype(models, data, dtype, rows, cols):
    x = data.draw(arrays(dtype, (rows, cols)))  # any bits, NaN payloads and -0.0 included
    got = check(models.get(f"identity_{dtype}", onnx_models.identity, dtype), {"x": x})
    assert_bitwise_equal(got["y"], x, "y")


@given(data=st.data(), dtype=st.sampled_from(ADD_DTYPES), rows=batch, cols=width)
def test_add_equals_numpy_and_onnxruntime_for_every_dtype(models, data, dtype, rows, cols):
    a = data.draw(hnp.arrays(dtype, (rows, cols)))
    b = data.draw(hnp.arrays(dtype, (rows, cols)))
    with np.errstate(all="ignore"):  # integer wrap-around and float overflow are part of the property
        expected = a + b
    check(models.get(f"add_{dtype}", onnx_models.add, dtype), {"a": a, "b": b}, {"c": expected})


@given(data=st.data(), dtype=st.sampled_from(MATMUL_DTYPES), rows=batch, k=st.integers(1, 12), n=st.integers(1, 12))
def test_matmul_equals_onnxruntime_bitwise_and_numpy_closely(models, data, dtype, rows, k, n):
    # Small integers keep integer products exact and float sums well within tolerance of numpy's order.
    small = st.integers(0 if dtype.kind == "u" else -8, 8)
    x = data.draw(hnp.arrays(dtype, (rows, k), elements=small))
    w = data.draw(hnp.arrays(dtype, (k, n), elements=small))
    check(models.get(f"matmul_{dtype}_{k}_{n}", onnx_models.matmul, dtype, k, n), {"x": x, "w": w},
          {"y": x @ w}, exact_numpy=dtype.kind != "f")


@given(data=st.data(), rows=batch, k=st.integers(1, 10), n=st.integers(1, 6),
       dtype=st.sampled_from(["float32", "float64"]))
def test_gemm_with_initializers_equals_onnxruntime_bitwise(models, data, rows, k, n, dtype):
    rng = np.random.default_rng(k * 100 + n)
    w = rng.standard_normal((n, k)).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    x = data.draw(hnp.arrays(np.dtype(dtype), (rows, k), elements=st.floats(-100, 100, width=32)))
    check(models.get(f"gemm_{dtype}_{k}_{n}", onnx_models.gemm, w, b), {"x": x}, {"y": x @ w.T + b}, exact_numpy=False)


@given(data=st.data(), source=st.sampled_from(ALL_DTYPES), target=st.sampled_from(ALL_DTYPES), n=st.integers(0, 20))
def test_cast_between_every_pair_of_dtypes_equals_numpy_and_onnxruntime(models, data, source, target, n):
    # Values every dtype holds exactly, so numpy's and ONNX's cast are both defined and must agree.
    values = st.integers(0, 100) if source.kind in "ub" or target.kind == "u" else st.integers(-100, 100)
    if source.kind == "b":
        values = st.booleans()
    x = data.draw(arrays(source, (n,), elements=values))
    check(models.get(f"cast_{source}_{target}", onnx_models.cast, source, target), {"x": x}, {"y": x.astype(target)})


@given(data=st.data(), rows=batch,
       dtype=st.sampled_from([np.dtype("float32"), np.dtype("float64"), np.dtype("float16")]))
def test_several_inputs_and_outputs_of_mixed_dtypes_equal_numpy(models, data, rows, dtype):
    a = data.draw(hnp.arrays(dtype, (rows, 3), elements=st.floats(-1e3, 1e3, width=16)))
    b = data.draw(hnp.arrays(dtype, (rows, 3), elements=st.floats(-1e3, 1e3, width=16)))
    c = data.draw(hnp.arrays(dtype, (3,), elements=st.floats(-1e3, 1e3, width=16)))
    got = check(models.get(f"multi_io_{dtype}", onnx_models.multi_io, dtype), {"a": a, "b": b, "c": c},
                {"s": a + b, "d": a - c, "n": (-c).astype(np.float64)})
    assert [got[k].dtype for k in got] == [dtype, dtype, np.dtype(np.float64)]


@given(data=st.data(), dims=hnp.array_shapes(min_dims=1, max_dims=6, min_side=0, max_side=5),
       dtype=st.sampled_from(ALL_DTYPES))
def test_any_rank_and_shape_passes_through_a_model_of_unknown_rank(models, data, dims, dtype):
    x = data.draw(arrays(dtype, dims))
    got = check(models.get(f"identity_any_rank_{dtype}", onnx_models.identity, dtype, None), {"x": x})
    assert_bitwise_equal(got["y"], x, "y")
