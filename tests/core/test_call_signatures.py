"""Session.run resolves names once per call signature and reuses them: every later call with the same
names still checks its arrays, and a call with other names, another key order or other outputs gets
its own resolution, never a stale one."""
import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

import juno_bridge as jb


@pytest.fixture(scope="module")
def sub_bytes():
    """c = a - b and d = a + b: two inputs whose order matters, two outputs."""
    f = TensorProto.FLOAT
    graph = helper.make_graph(
        [helper.make_node("Sub", ["a", "b"], ["c"]), helper.make_node("Add", ["a", "b"], ["d"])], "sub",
        [helper.make_tensor_value_info("a", f, [2]), helper.make_tensor_value_info("b", f, [2])],
        [helper.make_tensor_value_info("c", f, [2]), helper.make_tensor_value_info("d", f, [2])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString()


@pytest.fixture(scope="module")
def sub_model(sub_bytes):
    return jb.Session(sub_bytes)


A, B = np.array([5, 7], np.float32), np.array([1, 2], np.float32)


def test_every_call_of_a_known_signature_still_checks_its_arrays(sub_model):
    c, d = np.empty(2, np.float32), np.empty(2, np.float32)
    for _ in range(3):
        sub_model.run({"a": A, "b": B}, out={"c": c, "d": d})
    with pytest.raises(jb.InputTypeError, match="input 'b'"):
        sub_model.run({"a": A, "b": B.astype(np.float64)}, out={"c": c, "d": d})
    with pytest.raises(jb.InputError, match="C-contiguous"):
        sub_model.run({"a": A, "b": np.ones(4, np.float32)[::2]}, out={"c": c, "d": d})
    read_only = np.empty(2, np.float32)
    read_only.setflags(write=False)
    with pytest.raises(jb.InputError, match="output 'd'.*read-only"):
        sub_model.run({"a": A, "b": B}, out={"c": c, "d": read_only})
    with pytest.raises(jb.InputError, match="shape"):
        sub_model.run({"a": A, "b": B}, out={"c": np.empty(3, np.float32), "d": d})
    out = {"c": c, "d": d}
    result = sub_model.run({"a": A, "b": B}, out=out)
    assert result["c"] is c and result["d"] is d and list(result) == ["c", "d"]
    np.testing.assert_array_equal(c, A - B)
    # out= holding exactly the outputs, in output order, is itself the result; any other out= gives a new
    # dict in output order.
    assert result is out and sub_model.run({"a": A, "b": B}, out=out) is out
    for other in ({"d": d, "c": c}, {"c": c, "d": None}, {"c": c}):
        result = sub_model.run({"a": A, "b": B}, out=other)
        assert result is not other and list(result) == ["c", "d"] and result["c"] is c


def test_key_order_and_outputs_each_get_their_own_resolution(sub_model):
    for _ in range(2):  # each signature twice: the second call takes the remembered names
        np.testing.assert_array_equal(sub_model.run({"a": A, "b": B})["c"], A - B)
        np.testing.assert_array_equal(sub_model.run({"b": B, "a": A})["c"], A - B)
        np.testing.assert_array_equal(sub_model.run([B, A])["c"], B - A)
        assert list(sub_model.run({"a": A, "b": B}, outputs=["d"])) == ["d"]
        assert list(sub_model.run({"a": A, "b": B}, outputs=("d", "c"))) == ["d", "c"]
        d = np.empty(2, np.float32)
        result = sub_model.run({"a": A, "b": B}, out={"d": d, "c": None})  # None: the runtime allocates c
        assert list(result) == ["c", "d"] and result["d"] is d
        np.testing.assert_array_equal(result["c"], A - B)
        np.testing.assert_array_equal(d, A + B)


def test_names_a_signature_never_saw_are_still_refused(sub_model):
    sub_model.run({"a": A, "b": B}, out={"c": np.empty(2, np.float32)})
    with pytest.raises(jb.InputError, match="unknown input 'x'"):
        sub_model.run({"a": A, "x": B})
    with pytest.raises(jb.InputError, match="missing input"):
        sub_model.run({"a": A})
    with pytest.raises(jb.InputError, match="does not produce"):
        sub_model.run({"a": A, "b": B}, out={"c": np.empty(2, np.float32), "e": np.empty(2, np.float32)})
    with pytest.raises(jb.InputError, match="unknown output 'e'"):
        sub_model.run({"a": A, "b": B}, outputs=["e"])


def test_alternating_signatures_each_give_their_own_result(sub_model):
    for i in range(50):
        outputs = ["c"] if i % 2 else ["d"]
        np.testing.assert_array_equal(sub_model.run({"a": A, "b": B + i}, outputs=outputs)[outputs[0]],
                                      A - B - i if i % 2 else A + B + i)


class Subclass(np.ndarray):
    pass


@st.composite
def any_array(draw):
    """An array or buffer a caller may pass: of a dtype the bridge takes or not (byte-swapped, complex), of
    the model's shape or another rank (up to 17, over the core's 16), C-contiguous or strided, aligned or
    not, writable or read-only, a numpy subclass or a memoryview."""
    # The model's float32 [2] half of the time: a call then also reaches the other array's checks.
    dtype = np.dtype(draw(st.sampled_from([np.float32] * 7 + [np.float64, np.int64, np.float16, np.bool_,
                                                              np.complex64, ">f4", ml_dtypes.bfloat16])))
    shape = draw(st.sampled_from([(2,)] * 5 + [(1, 2), (3,), (), (1,) * 15 + (2,), (1,) * 16 + (2,)]))
    form = draw(st.sampled_from(["plain"] * 3 + ["strided", "unaligned", "read-only", "subclass", "memoryview"]))
    if form == "strided" and shape:
        array = np.zeros((*shape[:-1], 2 * shape[-1]), dtype)[..., ::2]
    elif form == "unaligned":
        array = np.zeros(int(np.prod(shape)) * dtype.itemsize + 1, np.uint8)[1:].view(dtype).reshape(shape)
    else:
        array = np.zeros(shape, dtype)
    array[...] = draw(st.sampled_from([1, 2]))
    if form == "read-only":
        array.setflags(write=False)
    if form == "subclass":
        array = array.view(Subclass)
    return memoryview(array) if form == "memoryview" and dtype.isnative and dtype != ml_dtypes.bfloat16 else array


def outcome(session, b, d, as_sequence):
    """What a run with input b and output buffer d gives: the error (its type and message), or the sum."""
    inputs = [A, b] if as_sequence else {"a": A, "b": b}
    try:
        result = session.run(inputs, out={"c": np.empty(2, np.float32), "d": d})
    except jb.Error as error:
        return type(error), str(error)
    assert result["d"] is d
    return "ran", np.asarray(d).tolist()


@settings(max_examples=300, deadline=None)
@given(b=any_array(), d=any_array(), as_sequence=st.booleans())
def test_a_remembered_signature_checks_every_array_as_the_first_call_does(sub_bytes, b, d, as_sequence):
    # A Session's first call of a signature resolves it; later calls take the remembered layout and view
    # each array through an inline fast path that takes only what every check passes: the two agree on
    # every array, accepted or refused, and on the message that refuses it.
    warm = jb.Session(sub_bytes)
    good = np.empty(2, np.float32)
    outcome(warm, B, good, as_sequence)
    assert outcome(warm, B, good, as_sequence) == ("ran", (A + B).tolist())
    first = outcome(jb.Session(sub_bytes), b, d, as_sequence)
    assert outcome(warm, b, d, as_sequence) == first
    if first[0] == "ran":
        assert first[1] == (A + np.asarray(b)).tolist()
