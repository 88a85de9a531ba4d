"""bfloat16 (ONNX tensor(bfloat16)): ml_dtypes.bfloat16 arrays in and out, equal bitwise to onnxruntime's own
Python API, without a copy; uint16 arrays of the bits only with the option bfloat16_as_uint16, refused by
name without it; no other dtype passes for bfloat16, or bfloat16 for another dtype."""
from __future__ import annotations

import re

import ml_dtypes
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

rows = st.integers(0, 9)
cols = st.integers(1, 17)


def any_bfloat16(shape):
    """Arrays of any bfloat16 bits (NaN payloads, infinities, -0.0, subnormals)."""
    return hnp.arrays(np.uint16, shape).map(lambda a: a.view(BFLOAT16))


def raises(error, *fragments):
    return pytest.raises(error, match="(?s)" + "".join(f"(?=.*{re.escape(f)})" for f in fragments))


@pytest.fixture(scope="module")
def add_model(model_path):
    return model_path("bfloat16_add", onnx_models.bfloat16_add)


@pytest.fixture(scope="module")
def io_model(model_path):
    return model_path("bfloat16_io", onnx_models.bfloat16_io)


@pytest.fixture(scope="module")
def add_pair(add_model):
    return bridge_session(add_model), reference_session(add_model)


@pytest.fixture(scope="module")
def io_pair(io_model):
    return bridge_session(io_model), reference_session(io_model)


@pytest.fixture(scope="module")
def add_bits(add_model):
    return bridge_session(add_model, bfloat16_as_uint16=True)


def test_bfloat16_is_a_dtype_of_its_own_in_every_table(io_model):
    assert "bfloat16" in jb.SUPPORTED_DTYPES
    assert jb.dtypes.jb_code(ml_dtypes.bfloat16) == 16 and jb.dtypes.numpy_dtype(16) == BFLOAT16
    s = jb.Session(io_model)
    b, y = s.inputs()[1], s.outputs()[0]
    assert (b.dtype, b.type_name, y.dtype, y.type_name) == (BFLOAT16, "tensor(bfloat16)", BFLOAT16, "tensor(bfloat16)")
    assert repr(b) == "TensorInfo('b', bfloat16, [n])"


@given(data=st.data(), rows=rows, cols=cols)
def test_bfloat16_in_and_out_equals_onnxruntime_bitwise_for_any_shape(add_pair, data, rows, cols):
    a, b = data.draw(any_bfloat16((rows, cols))), data.draw(any_bfloat16((rows, cols)))
    session, reference = add_pair
    expected = reference_run_bfloat16(reference, {"a": a, "b": b})
    got = run_both_ways(session, {"a": a, "b": b}, expected)
    assert got["c"].dtype == BFLOAT16
    assert_results_equal(got, expected)


@given(data=st.data(), rows=rows, cols=cols)
def test_bfloat16_sums_of_small_values_equal_ml_dtypes(add_pair, data, rows, cols):
    small = st.integers(-100, 100).map(float)
    a = data.draw(hnp.arrays(np.float32, (rows, cols), elements=small)).astype(BFLOAT16)
    b = data.draw(hnp.arrays(np.float32, (rows, cols), elements=small)).astype(BFLOAT16)
    expected = (a.astype(np.float32) + b.astype(np.float32)).astype(BFLOAT16)  # both round to nearest even
    assert_bitwise_equal(add_pair[0].run({"a": a, "b": b})["c"], expected, "c")


@given(data=st.data(), n=st.integers(0, 40))
def test_float32_to_bfloat16_and_back_equals_onnxruntime_bitwise(io_pair, data, n):
    x = data.draw(hnp.arrays(np.float32, (n,)))  # any float32 bits: rounding, NaN, infinities
    b = data.draw(any_bfloat16((n,)))
    session, reference = io_pair
    expected = reference_run_bfloat16(reference, {"x": x, "b": b})
    got = run_both_ways(session, {"x": x, "b": b}, expected)
    assert [v.dtype for v in got.values()] == [BFLOAT16, np.dtype(np.float32)]
    assert_results_equal(got, expected)


@given(data=st.data(), rows=rows, cols=cols)
def test_uint16_bits_with_the_option_give_the_same_bits_as_bfloat16_arrays(add_pair, add_bits, data, rows, cols):
    a, b = data.draw(any_bfloat16((rows, cols))), data.draw(any_bfloat16((rows, cols)))
    expected = add_pair[0].run({"a": a, "b": b})["c"]
    got = add_bits.run({"a": a.view(np.uint16), "b": b.view(np.uint16)})["c"]
    assert got.dtype == np.uint16  # the option gives bfloat16 outputs as their bits too
    assert_bitwise_equal(got, expected.view(np.uint16), "c")
    out = np.full((rows, cols), 0xFFFF, np.uint16)
    assert add_bits.run({"a": a.view(np.uint16), "b": b}, out={"c": out})["c"] is out  # both kinds of input
    assert_bitwise_equal(out, expected.view(np.uint16), "c")


def test_the_option_also_holds_for_run_async_and_bind(add_bits):
    a = np.arange(12, dtype=np.float32).reshape(3, 4).astype(BFLOAT16)
    expected = (2 * a.astype(np.float32)).astype(BFLOAT16).view(np.uint16)
    bits = a.view(np.uint16)
    got = add_bits.run_async({"a": bits, "b": bits}).result(timeout=60)["c"]
    assert got.dtype == np.uint16
    assert_bitwise_equal(got, expected, "c")
    out = np.zeros_like(bits)
    binding = add_bits.bind({"a": bits, "b": bits}, out={"c": out})
    refill = a.astype(np.float32) + 1
    bits[...] = refill.astype(BFLOAT16).view(np.uint16)  # in place
    assert binding.run()["c"] is out
    assert_bitwise_equal(out, (2 * refill).astype(BFLOAT16).view(np.uint16), "c")


def test_bfloat16_arrays_pass_without_a_copy(add_pair, add_bits):
    session = add_pair[0]
    a = np.ones((4, 3), BFLOAT16)
    b = np.full((4, 3), 2, BFLOAT16)
    c = session.run({"a": a, "b": b})["c"]
    assert session._stats()["input_addresses"] == [a.ctypes.data, b.ctypes.data]
    assert c.base.address == c.ctypes.data  # the pointer ONNX Runtime returned is the array's data
    out = np.zeros((4, 3), BFLOAT16)
    address = out.ctypes.data
    assert session.run({"a": a, "b": b}, out={"c": out})["c"] is out and out.ctypes.data == address
    np.testing.assert_array_equal(out.astype(np.float32), 3)
    # The uint16 view of the option is the same memory, relabelled, not converted.
    bits = a.view(np.uint16)
    c = add_bits.run({"a": bits, "b": b.view(np.uint16)})["c"]
    assert add_bits._stats()["input_addresses"] == [bits.ctypes.data, b.ctypes.data]
    assert c.dtype == np.uint16 and c.base.address == c.ctypes.data


def test_a_passed_through_bfloat16_input_comes_back_as_the_same_memory(tmp_path):
    from onnx import TensorProto, helper

    model = onnx_models.make_model([helper.make_node("Cast", ["x"], ["f"], to=TensorProto.FLOAT)],
                                   [onnx_models.value_info("x", TensorProto.BFLOAT16, ("n",))],
                                   [onnx_models.value_info("x", TensorProto.BFLOAT16, ("n",)),
                                    onnx_models.value_info("f", np.float32, ("n",))])
    path = onnx_models.save(model, tmp_path, "passthrough_bf16")
    x = np.arange(6, dtype=np.float32).astype(BFLOAT16)
    r = jb.Session(path).run({"x": x})
    assert r["x"].dtype == BFLOAT16 and r["x"].ctypes.data == x.ctypes.data and r["x"].base.aliased is x
    np.testing.assert_array_equal(r["f"], np.arange(6, dtype=np.float32))
    r = jb.Session(path, bfloat16_as_uint16=True).run({"x": x.view(np.uint16)})
    assert r["x"].dtype == np.uint16 and r["x"].ctypes.data == x.ctypes.data


def test_uint16_without_the_option_is_refused_naming_bfloat16_and_the_option(add_pair):
    session = add_pair[0]
    a = np.zeros((2, 3), BFLOAT16)
    with raises(jb.InputTypeError, "input 'b'", "expected dtype bfloat16, got uint16", "bfloat16_as_uint16"):
        session.run({"a": a, "b": a.view(np.uint16)})
    with raises(jb.InputTypeError, "output 'c'", "expected dtype bfloat16, got uint16", "bfloat16_as_uint16"):
        session.run({"a": a, "b": a}, out={"c": np.zeros((2, 3), np.uint16)})


@pytest.mark.parametrize("dtype", ["float32", "float16", "int16", "float64"])
def test_no_other_dtype_passes_for_bfloat16_even_with_the_option(add_pair, add_bits, dtype):
    a = np.zeros((2, 3), BFLOAT16)
    for session in (add_pair[0], add_bits):
        with raises(jb.InputTypeError, "input 'a'", f"expected dtype bfloat16, got {dtype}"):
            session.run({"a": a.astype(dtype), "b": a})  # never cast silently


def test_bfloat16_and_uint16_do_not_pass_for_other_dtypes(model_path):
    path = model_path("identity_u16", onnx_models.identity, np.uint16)
    for options in ({}, {"bfloat16_as_uint16": True}):  # the option relabels uint16 only where bfloat16 is due
        with raises(jb.InputTypeError, "input 'x'", "expected dtype uint16, got bfloat16"):
            jb.Session(path, **options).run({"x": np.zeros((1, 2), BFLOAT16)})
    with raises(jb.InputTypeError, "input 'a'", "expected dtype float32, got bfloat16"):
        jb.Session(model_path("add_f32", onnx_models.add, np.float32)).run({"a": np.zeros((1, 2), BFLOAT16),
                                                                            "b": np.zeros((1, 2), np.float32)})


def test_the_option_is_0_or_1(add_model):
    with raises(jb.InvalidArgumentError, "option 'bfloat16_as_uint16' is 0 or 1; got 'yes'"):
        jb.Session(add_model, config={"bfloat16_as_uint16": "yes"})
