"""Session.run resolves names once per call signature and reuses them: every later call with the same
names still checks its arrays, and a call with other names, another key order or other outputs gets
its own resolution, never a stale one."""
import numpy as np
import pytest
from onnx import TensorProto, helper

import juno_bridge as jb


@pytest.fixture(scope="module")
def sub_model():
    """c = a - b and d = a + b: two inputs whose order matters, two outputs."""
    f = TensorProto.FLOAT
    graph = helper.make_graph(
        [helper.make_node("Sub", ["a", "b"], ["c"]), helper.make_node("Add", ["a", "b"], ["d"])], "sub",
        [helper.make_tensor_value_info("a", f, [2]), helper.make_tensor_value_info("b", f, [2])],
        [helper.make_tensor_value_info("c", f, [2]), helper.make_tensor_value_info("d", f, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return jb.Session(model.SerializeToString())


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
    result = sub_model.run({"a": A, "b": B}, out={"c": c, "d": d})
    assert result["c"] is c and result["d"] is d and list(result) == ["c", "d"]
    np.testing.assert_array_equal(c, A - B)


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
