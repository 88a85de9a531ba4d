"""Dynamic dims per input (export_torch(dynamic_shapes=...)): a message-passing graph network whose node
and edge counts vary independently, and a transformer encoder with free batch and sequence length, each
through .pt2, .pt and torch.onnx's dynamo export, equal to the torch module; the signature names every
dim with its exported range, and runs outside it are clear errors. Each model is exported once per
format (module-scoped fixtures; AOTInductor compiles take tens of seconds)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import torch_models as tm
from helpers.torch_models import torch

import juno_bridge as jb

# A few examples each: every one runs three sessions over inputs of up to a few thousand rows.
PROPERTY = settings(max_examples=10, deadline=None)
ONNX = pytest.param(".onnx", marks=pytest.mark.onnxscript)
# float32 through differently fused kernels (and summed in another order by scatter_add)
TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}


@pytest.fixture(scope="module", params=[".pt2", ".pt", ONNX])
def graph_session(request):
    path = tm.message_passing_onnx() if request.param == ".onnx" else tm.message_passing(request.param)
    return jb.Session(path)


@pytest.fixture(scope="module", params=[".pt2", ".pt", ONNX])
def encoder_session(request):
    return jb.Session(tm.encoder_onnx() if request.param == ".onnx" else tm.encoder(request.param))


def describe(tensors):
    return [(t.name, str(t.dtype), t.shape, t.dim_names) for t in tensors]


def test_graph_signature_names_node_and_edge_dims(graph_session):
    assert describe(graph_session.inputs()) == [("x", "float32", (-1, 4), ("N", None)),
                                                ("edge_index", "int64", (2, -1), (None, "E"))]
    assert describe(graph_session.outputs()) == [("y", "float32", (-1, 4), ("N", None))]


def test_encoder_signature_names_batch_and_sequence_dims(encoder_session):
    assert describe(encoder_session.inputs()) == [("tokens", "float32", (-1, -1, 8), ("B", "T", None))]
    assert describe(encoder_session.outputs()) == [("encoded", "float32", (-1, -1, 16), ("B", "T", None))]


@PROPERTY
@given(nodes=st.integers(*tm.GRAPH_NODES), edges=st.integers(*tm.GRAPH_EDGES), seed=st.integers(0, 2**32 - 1))
def test_message_passing_equals_the_module_for_any_node_and_edge_count(graph_session, nodes, edges, seed):
    x, edge_index = tm.graph_example(nodes, edges, seed)
    got = graph_session.run({"x": x.numpy(), "edge_index": edge_index.numpy()})["y"]
    with torch.inference_mode():
        want = tm.MESSAGE_PASSING(x, edge_index).numpy()
    assert got.shape == (nodes, 4)
    np.testing.assert_allclose(got, want, **TOLERANCE)


@pytest.mark.parametrize("nodes, edges", [(1, 0), (1, 1), (2, 0), (tm.GRAPH_NODES[1], tm.GRAPH_EDGES[1])])
def test_message_passing_at_the_ends_of_its_ranges(graph_session, nodes, edges):
    x, edge_index = tm.graph_example(nodes, edges, seed=nodes + edges)
    with torch.inference_mode():
        want = tm.MESSAGE_PASSING(x, edge_index).numpy()
    np.testing.assert_allclose(graph_session.run({"x": x.numpy(), "edge_index": edge_index.numpy()})["y"], want,
                               **TOLERANCE)


@PROPERTY
@given(batch=st.integers(*tm.ENCODER_BATCH), tokens=st.integers(*tm.ENCODER_TOKENS), seed=st.integers(0, 2**32 - 1))
def test_encoder_equals_the_module_for_any_batch_and_sequence_length(encoder_session, batch, tokens, seed):
    x = torch.from_numpy(np.random.default_rng(seed).standard_normal((batch, tokens, 8)).astype(np.float32))
    got = encoder_session.run({"tokens": x.numpy()})["encoded"]
    with torch.inference_mode():
        want = tm.ENCODER(x).numpy()
    np.testing.assert_allclose(got, want, **TOLERANCE)


@pytest.mark.parametrize("suffix", [".pt2", ".pt"])
def test_sizes_outside_the_exported_ranges_are_errors_naming_dim_and_range(suffix):
    graph, encoder = jb.Session(tm.message_passing(suffix)), jb.Session(tm.encoder(suffix))
    x, edge_index = tm.graph_example(3, tm.GRAPH_EDGES[1] + 1)
    with pytest.raises(jb.InputError, match=r"input 'edge_index': dim 1 \('E'\) is 5001, outside the range "
                                            r"\[0, 5000\] the model was exported for \(its juno_bridge signature\)"):
        graph.run({"x": x.numpy(), "edge_index": edge_index.numpy()})
    with pytest.raises(jb.InputError, match=r"input 'tokens': dim 1 \('T'\) is 65, outside the range \[1, 64\]"):
        encoder.run({"tokens": np.zeros((2, 65, 8), np.float32)})
    with pytest.raises(jb.InputError, match=r"input 'tokens': dim 0 \('B'\) is 0, outside the range \[1, 16\]"):
        encoder.run({"tokens": np.zeros((0, 5, 8), np.float32)})


class MatMul(torch.nn.Module):
    def forward(self, a, b):
        return a @ b


def test_one_dim_shared_by_two_inputs_and_independent_dims(tmp_path):
    Dim = torch.export.Dim
    k = Dim("K", min=1, max=64)
    path = tm.export_torch(MatMul(), (torch.randn(3, 4), torch.randn(4, 5)), tmp_path / "matmul.pt",
                           dynamic_shapes=({0: Dim("M", min=1, max=64), 1: k}, {0: k, 1: Dim("N", min=1, max=64)}),
                           input_names=["a", "b"])
    s = jb.Session(path)
    assert [i.dim_names for i in s.inputs()] == [("M", "K"), ("K", "N")]
    assert s.outputs()[0].dim_names == ("M", "N")
    a, b = np.ones((1, 7), np.float32), np.full((7, 2), 2, np.float32)
    np.testing.assert_array_equal(s.run({"a": a, "b": b})["output"], a @ b)
    with pytest.raises(jb.InputError, match=r"input 'b': dim 0 \('K'\) is 5 but input 'a' has K = 4"):
        s.run({"a": np.ones((3, 4), np.float32), "b": np.ones((5, 2), np.float32)})


def test_dynamic_shapes_replaces_dynamic_batch(tmp_path):
    shapes = ({0: torch.export.Dim("M", min=1, max=8)}, None)
    with pytest.raises(ValueError, match="dynamic_shapes states every dynamic dim; it replaces dynamic_batch"):
        tm.export_torch(MatMul(), (torch.randn(3, 4), torch.randn(4, 5)), tmp_path / "m.pt", True,
                        dynamic_shapes=shapes)



def test_an_auto_dim_takes_torchs_symbol_as_its_name_and_runs_from_1(tmp_path):
    Dim = torch.export.Dim
    path = tm.export_torch(MatMul(), (torch.randn(3, 4), torch.randn(4, 5)), tmp_path / "auto.pt",
                           dynamic_shapes=((Dim.AUTO, Dim.STATIC), None), input_names=["a", "b"])
    s = jb.Session(path)
    (name, fixed), _ = (i.dim_names for i in s.inputs())
    assert name.startswith("s") and name[1:].isdigit() and fixed is None
    a, b = np.ones((1, 4), np.float32), np.ones((4, 5), np.float32)
    np.testing.assert_array_equal(s.run({"a": a, "b": b})["output"], a @ b)
    with pytest.raises(jb.InputError, match=rf"input 'a': dim 0 \('{name}'\) is 0, outside the range \[1, "):
        s.run({"a": np.ones((0, 4), np.float32), "b": b})
