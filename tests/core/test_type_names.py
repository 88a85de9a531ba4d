"""TensorInfo.type_name is ONNX's full spelling of each input's and output's type, the one onnxruntime's
Python API gives: sequences, maps and optionals with what they hold, not only their kind."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

import juno_bridge as jb
from helpers import onnx_models
from helpers.native_build import write_types_model


def spelled(session: jb.Session) -> list[tuple[str, str]]:
    return [(i.name, i.type_name) for i in session.inputs() + session.outputs()]


def onnxruntime_spelling(path) -> list[tuple[str, str]]:
    reference = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [(i.name, i.type) for i in reference.get_inputs() + reference.get_outputs()]


def test_sequences_maps_and_optionals_are_spelt_as_onnxruntime_spells_them(tmp_path):
    path = write_types_model(tmp_path / "types.onnx")
    s = jb.Session(path)
    assert spelled(s) == onnxruntime_spelling(path) == [
        ("x", "tensor(float)"), ("m", "map(string,tensor(double))"), ("z", "seq(map(int64,tensor(float)))"),
        ("o", "optional(tensor(float))"), ("v", "tensor(double)")]
    assert [(i.dtype, i.shape) for i in s.outputs()] == [(None, None), (None, None), (np.dtype(np.float64), (-1, 2))]


def test_a_sequence_of_tensors_and_a_string_tensor_are_spelt_in_full(model_path):
    for name, builder in (("sequence_output", onnx_models.sequence_output),
                          ("sequence_input", onnx_models.sequence_input), ("string_input", onnx_models.string_input)):
        path = model_path(name, builder)
        assert spelled(jb.Session(path)) == onnxruntime_spelling(path)


def sparse_input():
    """y = sp @ b with sp a sparse tensor (ONNX Runtime's SparseToDenseMatMul)."""
    from onnx import TensorProto, helper

    return onnx_models.make_model(
        [helper.make_node("SparseToDenseMatMul", ["sp", "b"], ["y"], domain="com.microsoft")],
        [helper.make_value_info("sp", helper.make_sparse_tensor_type_proto(TensorProto.FLOAT, [2, 3])),
         onnx_models.value_info("b", np.float32, (3, 2))],
        [onnx_models.value_info("y", np.float32, (2, 2))], opset=17, domains={"com.microsoft": 1})


def test_a_sparse_tensor_is_spelt_with_its_element_type(model_path):
    path = model_path("sparse_input", sparse_input)
    s = jb.Session(path)
    assert spelled(s) == onnxruntime_spelling(path) == [("sp", "sparse_tensor(float)"), ("b", "tensor(float)"),
                                                        ("y", "tensor(float)")]
    with pytest.raises(jb.UnsupportedError, match=r"input 'sp' is of type sparse_tensor\(float\)"):
        s.run([np.zeros((2, 3), np.float32), np.zeros((3, 2), np.float32)])


def zipmap_and_optional_outputs():
    """x float[n, 2] -> z = ZipMap(x), o = Optional(x), p = x."""
    from onnx import TensorProto, helper

    scalar = helper.make_tensor_type_proto(TensorProto.FLOAT, [])
    return onnx_models.make_model(
        [helper.make_node("ZipMap", ["x"], ["z"], domain="ai.onnx.ml", classlabels_int64s=[0, 1]),
         helper.make_node("Optional", ["x"], ["o"]), helper.make_node("Identity", ["x"], ["p"])],
        [onnx_models.value_info("x", np.float32, ("n", 2))],
        [helper.make_value_info("z", helper.make_sequence_type_proto(helper.make_map_type_proto(TensorProto.INT64,
                                                                                                scalar))),
         helper.make_value_info("o", helper.make_optional_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT,
                                                                                                   ["n", 2]))),
         onnx_models.value_info("p", np.float32, ("n", 2))], domains={"ai.onnx.ml": 3})


def test_every_output_of_a_type_the_bridge_cannot_pass_is_refused_before_the_run_naming_the_others(model_path):
    s = jb.Session(model_path("zipmap_and_optional", zipmap_and_optional_outputs))
    x = np.ones((3, 2), np.float32)
    # outputs=None asks for all: the first the bridge cannot pass is the one named.
    for outputs, output, type_name in ((None, "z", "seq(map(int64,tensor(float)))"),
                                       (["z"], "z", "seq(map(int64,tensor(float)))"),
                                       (["p", "o"], "o", "optional(tensor(float))"),
                                       (["o"], "o", "optional(tensor(float))")):
        with pytest.raises(jb.UnsupportedError) as info:
            s.run([x], outputs=outputs)
        message = str(info.value)
        assert f"output '{output}' is of type {type_name}" in message and "outputs=['p']" in message, message
        assert ("zipmap=False" in message) == (output == "z"), message
    np.testing.assert_array_equal(s.run([x], outputs=["p"])["p"], x)
