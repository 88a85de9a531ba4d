"""Every bad argument to run(): the right exception class, and a message that names the tensor, what was
expected and what came. Never a crash, never a silent copy or cast."""
from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import juno_bridge as jb
from helpers import onnx_models


@pytest.fixture(scope="module")
def session(model_path):
    """c[batch, 3] = a[batch, 3] + b[batch, 3], float32."""
    return jb.Session(model_path("add_batch_3", onnx_models.add, np.float32, ("batch", 3)), intra_op_threads=1)


def good(rows=2):
    return np.ones((rows, 3), np.float32)


def raises(error, *fragments):
    """pytest.raises that also requires each fragment (a literal) to appear in the message."""
    return pytest.raises(error, match="(?s)" + "".join(f"(?=.*{re.escape(f)})" for f in fragments))


def test_wrong_dtype_is_a_type_error_naming_both_dtypes(session):
    with raises(jb.InputTypeError, "input 'a'", "expected dtype float32", "got float64") as info:
        session.run({"a": good().astype(np.float64), "b": good()})
    assert isinstance(info.value, TypeError) and isinstance(info.value, jb.InputError)


def test_integer_array_is_not_cast_silently(session):
    with raises(jb.InputTypeError, "input 'b'", "float32", "int64"):
        session.run({"a": good(), "b": np.ones((2, 3), np.int64)})


def test_wrong_rank_names_the_declared_shape(session):
    with raises(jb.InputError, "input 'a'", "expected rank 2", "[batch, 3]", "got rank 1", "[3]") as info:
        session.run({"a": good()[0], "b": good()})
    assert isinstance(info.value, ValueError)


def test_wrong_fixed_dim_names_the_dim(session):
    with raises(jb.InputError, "input 'b'", "expected shape [batch, 3]", "got [2, 4]", "dim 1"):
        session.run({"a": good(), "b": np.ones((2, 4), np.float32)})


def test_unknown_input_name_lists_the_models_inputs(session):
    with raises(jb.InputError, "unknown input 'pmt'", "'a', 'b'"):
        session.run({"a": good(), "b": good(), "pmt": good()})


def test_missing_input_is_named(session):
    with raises(jb.InputError, "missing input(s) 'b'", "'a', 'b'"):
        session.run({"a": good()})


def test_too_many_positional_inputs(session):
    with raises(jb.InputError, "takes 2 input(s)", "'a', 'b'", "got 3"):
        session.run([good(), good(), good()])


def test_too_few_positional_inputs(session):
    with raises(jb.InputError, "takes 2 input(s)", "got 1"):
        session.run((good(),))


@pytest.mark.parametrize("make", [lambda: np.ones((3, 2), np.float32).T, lambda: np.ones((2, 6), np.float32)[:, ::2],
                                  lambda: np.ones((4, 3), np.float32)[::2]],
                         ids=["transposed", "column-sliced", "row-sliced"])
def test_non_contiguous_input_is_refused_not_copied(session, make):
    x = make()
    with raises(jb.InputError, "input 'a'", "C-contiguous", f"strides {x.strides}", "ascontiguousarray"):
        session.run({"a": x, "b": good()})


def test_misaligned_buffer_is_refused(session):
    x = np.frombuffer(bytearray(4 * 6 + 1), np.float32, count=6, offset=1).reshape(2, 3)
    assert not x.flags.aligned
    with raises(jb.InputError, "input 'a'", "not aligned", "4-byte"):
        session.run({"a": x, "b": good()})


def test_read_only_out_buffer_is_refused(session):
    y = np.empty((2, 3), np.float32)
    y.flags.writeable = False
    with raises(jb.InputError, "output 'c'", "read-only"):
        session.run({"a": good(), "b": good()}, out={"c": y})


def test_read_only_input_is_fine(session):
    x = np.frombuffer(np.full(6, 2, np.float32).tobytes(), np.float32).reshape(2, 3)  # bytes: read-only
    np.testing.assert_array_equal(session.run({"a": x, "b": x})["c"], 4)


def test_out_buffer_that_is_an_input_is_refused(session):
    a = good()
    with raises(jb.InputError, "output 'c'", "overlaps input 'a'"):
        session.run({"a": a, "b": good()}, out={"c": a})
    np.testing.assert_array_equal(a, 1)  # nothing was written


def test_out_buffer_overlapping_part_of_an_input_is_refused(session):
    storage = np.ones((3, 3), np.float32)
    with raises(jb.InputError, "output 'c'", "overlaps input 'b'"):
        session.run({"a": good(), "b": storage[:2]}, out={"c": storage[1:]})


def test_out_naming_an_unknown_output(session):
    with raises(jb.InputError, "out=", "'y'", "'c'"):
        session.run({"a": good(), "b": good()}, out={"y": good()})


def test_out_with_wrong_dtype_or_shape(session):
    with raises(jb.InputTypeError, "output 'c'", "expected dtype float32", "got float16"):
        session.run({"a": good(), "b": good()}, out={"c": np.empty((2, 3), np.float16)})
    with raises(jb.InputError, "output 'c'", "expected shape [batch, 3]", "got [2, 5]"):
        session.run({"a": good(), "b": good()}, out={"c": np.empty((2, 5), np.float32)})


def test_out_with_a_batch_that_does_not_match_is_the_runtimes_error_with_its_code(session):
    with raises(jb.RunError, "'c'", "{5,3}", "{2,3}") as info:
        session.run({"a": good(), "b": good()}, out={"c": np.empty((5, 3), np.float32)})
    assert info.value.backend_code == 2  # ORT_INVALID_ARGUMENT, kept from the runtime


def test_unknown_output_in_outputs(session):
    with raises(jb.InputError, "unknown output 'y'", "'c'"):
        session.run({"a": good(), "b": good()}, outputs=["y"])


def test_output_requested_twice(session):
    with raises(jb.InputError, "output 'c'", "twice"):
        session.run({"a": good(), "b": good()}, outputs=["c", "c"])


def test_non_native_byte_order_is_refused_not_swapped(session):
    with raises(jb.InputTypeError, "input 'a'", ">f4", "native byte order"):
        session.run({"a": good().astype(">f4"), "b": good()})


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128, object, "U3", "datetime64[s]", np.longdouble])
def test_unsupported_numpy_dtype_is_named(session, dtype):
    x = np.zeros((2, 3), dtype)
    with raises(jb.InputTypeError, "input 'b'", "not supported", "float32, "):
        session.run({"a": good(), "b": x})


@pytest.mark.parametrize("value", [[[1.0, 2.0, 3.0]], 3.0, None, "abc"], ids=["list", "float", "None", "str"])
def test_a_non_array_input_is_a_type_error(session, value):
    with raises(jb.InputTypeError, "input 'a'", "numpy array", type(value).__name__) as info:
        session.run({"a": value, "b": good()})
    assert isinstance(info.value, TypeError)


def test_inputs_that_are_neither_mapping_nor_sequence(session):
    with raises(jb.InputTypeError, "inputs must be", "int"):
        session.run(42)


def test_rank_above_the_maximum(model_path):
    s = jb.Session(model_path("identity_any_rank", onnx_models.identity, np.float32, None))
    with raises(jb.InputError, "input 'x'", "rank 17", "maximum of 16"):
        s.run({"x": np.ones((1,) * 17, np.float32)})


def test_string_input_is_unsupported_by_name(model_path):
    s = jb.Session(model_path("string_input", onnx_models.string_input))
    text = s.inputs()[0]
    assert (text.name, text.dtype, text.type_name) == ("text", None, "tensor(string)")
    with raises(jb.UnsupportedError, "input 'text'", "tensor(string)") as info:
        s.run({"text": np.zeros(3, np.float32), "x": np.zeros(3, np.float32)})
    assert isinstance(info.value, NotImplementedError)


def test_sequence_input_is_unsupported_by_name(model_path):
    s = jb.Session(model_path("sequence_input", onnx_models.sequence_input))
    assert s.inputs()[0].type_name == "seq(tensor(float))" and s.inputs()[0].shape is None
    with raises(jb.UnsupportedError, "input 'items'", "seq(tensor(float))"):
        s.run({"items": np.zeros(3, np.float32)})


def test_sequence_output_is_unsupported_by_name_but_tensor_outputs_still_run(model_path):
    s = jb.Session(model_path("sequence_output", onnx_models.sequence_output))
    x = np.arange(3, dtype=np.float32)
    with raises(jb.UnsupportedError, "output 'seq'", "seq"):
        s.run({"x": x})
    np.testing.assert_array_equal(s.run({"x": x}, outputs=["y"])["y"], x)


def test_closed_session_refuses_everything(add_f32):
    s = jb.Session(add_f32)
    s.close()
    assert s.closed
    for call in (lambda: s.run({"a": good(), "b": good()}), s.inputs, s.outputs, s.metadata, s._stats):
        with raises(jb.InvalidArgumentError, "closed"):
            call()
    s.close()  # closing twice is harmless


def test_errors_leave_the_session_usable(session):
    for bad in ({"a": good()}, {"a": good().astype(np.float64), "b": good()}):
        with pytest.raises(jb.InputError):
            session.run(bad)
    np.testing.assert_array_equal(session.run({"a": good(), "b": good()})["c"], 2)


OTHER_DTYPES = [d for d in jb.SUPPORTED_DTYPES if d != "float32"]


@given(dtype=st.sampled_from(OTHER_DTYPES), rows=st.integers(0, 5), which=st.sampled_from(["a", "b"]))
def test_any_other_supported_dtype_is_refused_by_name(session, dtype, rows, which):
    feeds = {"a": good(rows), "b": good(rows)}
    feeds[which] = np.zeros((rows, 3), dtype)
    with raises(jb.InputTypeError, f"input '{which}'", "expected dtype float32", f"got {dtype}"):
        session.run(feeds)


@given(shape=hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=4).filter(lambda s: len(s) != 2))
def test_any_other_rank_is_refused_with_both_shapes(session, shape):
    shown = "[" + ", ".join(map(str, shape)) + "]"
    with raises(jb.InputError, "input 'b'", "expected rank 2 [batch, 3]", f"got rank {len(shape)} {shown}"):
        session.run({"a": good(), "b": np.zeros(shape, np.float32)})


@given(rows=st.integers(2, 6), step=st.integers(2, 3), transpose=st.booleans())
def test_any_non_contiguous_view_is_refused(session, rows, step, transpose):
    base = np.zeros((3, rows * step), np.float32) if transpose else np.zeros((rows * step, 3), np.float32)
    view = base[:, ::step].T if transpose else base[::step]
    assert view.shape == (rows, 3) and not view.flags.c_contiguous
    with raises(jb.InputError, "input 'a'", "C-contiguous"):
        session.run({"a": view, "b": good(rows)})


def test_asking_for_no_output_is_a_usage_error(session):
    with raises(jb.InvalidArgumentError, "no output requested", "'c'"):
        session.run({"a": good(), "b": good()}, outputs=[])


def test_out_buffer_of_the_wrong_shape_for_an_input_passed_through(tmp_path):
    from onnx import helper

    from helpers.onnx_models import make_model, value_info

    model = make_model([helper.make_node("Neg", ["x"], ["n"])], [value_info("x", np.float32, ("n",))],
                       [value_info("x", np.float32, ("n",)), value_info("n", np.float32, ("n",))])
    s = jb.Session(model.SerializeToString())
    x = np.arange(5, dtype=np.float32)
    with raises(jb.InputError, "output 'x'", "input", "[5]", "got [4]"):
        s.run({"x": x}, out={"x": np.zeros(4, np.float32)})
    y = np.zeros(5, np.float32)
    assert s.run({"x": x}, out={"x": y})["x"] is y
    np.testing.assert_array_equal(y, x)  # written, though the runtime itself leaves such a buffer untouched


def test_sequence_of_maps_output_is_unsupported_by_name(model_path):
    s = jb.Session(model_path("zipmap", onnx_models.zipmap_output))
    x = np.full((2, 3), 0.25, np.float32)
    with raises(jb.UnsupportedError, "output 'z'", "seq"):
        s.run({"x": x})
    np.testing.assert_array_equal(s.run({"x": x}, outputs=["p"])["p"], x)


def test_a_uint16_array_for_a_bfloat16_input_is_refused_naming_bfloat16_and_the_option(model_path):
    s = jb.Session(model_path("bfloat16_io", onnx_models.bfloat16_io))
    assert [(i.name, i.dtype, i.type_name) for i in s.inputs()] == [("x", np.float32, "tensor(float)"),
                                                                    ("b", np.dtype("bfloat16"), "tensor(bfloat16)")]
    x, b = np.ones(3, np.float32), np.zeros(3, np.uint16)  # bfloat16's bits, as a caller might hold them
    with raises(jb.InputTypeError, "input 'b'", "expected dtype bfloat16, got uint16", "bfloat16_as_uint16=True"):
        s.run({"x": x, "b": b})
