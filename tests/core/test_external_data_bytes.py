"""A model whose tensors keep their data in a file beside it (ONNX external data) needs its path: from bytes
it is refused with that reason, wherever the tensor sits (an initializer, a Constant's value, a subgraph's
initializer) and whatever the working directory; bytes without external data are left to ONNX Runtime."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import helper, numpy_helper

import juno_bridge as jb
from helpers.onnx_models import make_model, value_info
from helpers.reference import assert_results_equal, bridge_session, reference_run

WEIGHTS = np.arange(64, dtype=np.float32).reshape(8, 8) / 7


def in_an_initializer():
    return make_model([helper.make_node("MatMul", ["x", "w"], ["y"])], [value_info("x", np.float32, ("n", 8))],
                      [value_info("y", np.float32, ("n", 8))], {"w": WEIGHTS})


def in_a_constant():
    return make_model([helper.make_node("Constant", [], ["w"], value=numpy_helper.from_array(WEIGHTS, "w_value")),
                       helper.make_node("MatMul", ["x", "w"], ["y"])],
                      [value_info("x", np.float32, ("n", 8))], [value_info("y", np.float32, ("n", 8))])


def in_a_subgraph():
    """y = x @ w when c, else x; w is an initializer of the then-branch."""
    then = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["t"])], "then", [],
                             [value_info("t", np.float32, ("n", 8))], [numpy_helper.from_array(WEIGHTS, "w")])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["e"])], "else", [],
                              [value_info("e", np.float32, ("n", 8))])
    return make_model([helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)],
                      [value_info("c", np.bool_, ()), value_info("x", np.float32, ("n", 8))],
                      [value_info("y", np.float32, ("n", 8))])


PLACES = {"initializer": (in_an_initializer, "w"), "Constant": (in_a_constant, "w_value"),
          "subgraph": (in_a_subgraph, "w")}


def save_with_external_data(model, directory):
    directory.mkdir(exist_ok=True)
    path = directory / "model.onnx"
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location="weights.bin",
              size_threshold=0, convert_attribute=True)
    assert (directory / "weights.bin").stat().st_size >= WEIGHTS.nbytes
    return path


def feeds(place, rows=3):
    x = np.random.default_rng(rows).standard_normal((rows, 8)).astype(np.float32)
    return {"c": np.array(True), "x": x} if place == "subgraph" else {"x": x}


@pytest.mark.parametrize("place", sorted(PLACES))
def test_by_path_external_data_are_read_and_equal_onnxruntime(tmp_path, place):
    path = save_with_external_data(PLACES[place][0](), tmp_path / "model dir")
    assert_results_equal(bridge_session(path).run(feeds(place)), reference_run(path, feeds(place)))


@pytest.mark.parametrize("place", sorted(PLACES))
@pytest.mark.parametrize("cwd", ["elsewhere", "model's directory"])
def test_from_bytes_external_data_are_refused_naming_the_tensor_and_the_file(tmp_path, monkeypatch, place, cwd):
    builder, tensor = PLACES[place]
    path = save_with_external_data(builder(), tmp_path / "model dir")
    monkeypatch.chdir(tmp_path if cwd == "elsewhere" else path.parent)
    for optimization in ("all", "disable"):  # disabled, ONNX Runtime itself would read ./weights.bin
        with pytest.raises(jb.ModelLoadError, match=f"its tensor '{tensor}' keeps its data in an external file "
                                                     r"\('weights.bin'\), and external data need the model's path"):
            jb.Session(path.read_bytes(), optimization=optimization)


def test_the_same_model_without_external_data_opens_from_bytes():
    model = in_a_subgraph()
    assert_results_equal(bridge_session(model.SerializeToString()).run(feeds("subgraph")),
                         reference_run(model.SerializeToString(), feeds("subgraph")))


@given(data=st.binary(min_size=1, max_size=256))
def test_bytes_that_are_no_model_are_left_to_onnxruntime(data):
    try:
        jb.Session(data)
    except jb.ModelLoadError as e:
        assert "external" not in str(e)
    except jb.Error as e:  # bytes that happen to parse as an empty model: ONNX Runtime's own verdict
        assert "external" not in str(e)


@given(cut=st.integers(1, 200))
def test_a_truncated_model_with_external_data_is_refused_or_left_to_onnxruntime(tmp_path_factory, cut):
    """Cut anywhere, bytes naming an external tensor before the cut are refused with the reason, the rest
    fail as ONNX Runtime says: never a crash, never a session."""
    directory = tmp_path_factory.mktemp("truncated")
    data = save_with_external_data(in_an_initializer(), directory).read_bytes()
    with pytest.raises(jb.Error):
        jb.Session(data[:max(1, len(data) - cut)])


def test_a_model_of_many_nested_subgraphs_is_walked(tmp_path):
    """Ten levels of If, the external tensor an initializer of the innermost branch."""
    inner = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["t"])], "innermost", [],
                              [value_info("t", np.float32, ("n", 8))], [numpy_helper.from_array(WEIGHTS, "w")])
    for level in range(10):
        other = helper.make_graph([helper.make_node("Identity", ["x"], [f"e{level}"])], f"else{level}", [],
                                  [value_info(f"e{level}", np.float32, ("n", 8))])
        node = helper.make_node("If", ["c"], [f"y{level}"], then_branch=inner, else_branch=other)
        inner = helper.make_graph([node], f"level{level}", [], [value_info(f"y{level}", np.float32, ("n", 8))])
    model = make_model(list(inner.node), [value_info("c", np.bool_, ()), value_info("x", np.float32, ("n", 8))],
                       [value_info("y9", np.float32, ("n", 8))])
    path = save_with_external_data(model, tmp_path / "nested")
    assert_results_equal(bridge_session(path).run(feeds("subgraph")), reference_run(path, feeds("subgraph")))
    with pytest.raises(jb.ModelLoadError, match="its tensor 'w' keeps its data in an external file"):
        jb.Session(path.read_bytes())
