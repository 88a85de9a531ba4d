"""Small ONNX models built with the `onnx` helper at test time (nothing binary is committed).

Every builder returns an `onnx.ModelProto`; `save(model, directory, name)` writes it and returns the path.
ONNX Runtime 1.31 reads IR version <= 11, so models are stamped with IR 9 whatever `onnx` writes by default.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

IR_VERSION = 9
OPSET = 20  # Gelu needs 20; ONNX Runtime releases since 1.17 read it


def tensor_type(dtype) -> int:
    """ONNX element type of a numpy dtype."""
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def value_info(name: str, dtype, shape: Sequence[int | str | None] | None):
    """A graph input/output; `shape` None leaves the rank unknown, a str dim is symbolic, None a dim without name."""
    elem = dtype if isinstance(dtype, int) else tensor_type(dtype)
    return helper.make_tensor_value_info(name, elem, None if shape is None else list(shape))


def make_model(nodes, inputs, outputs, initializers=(), *, opset: int = OPSET, name: str = "test_graph",
               domains: dict[str, int] | None = None, **model_fields) -> onnx.ModelProto:
    """`domains`: further operator sets, e.g. {"com.microsoft": 1, "ai.onnx.ml": 3}."""
    graph = helper.make_graph(list(nodes), name, list(inputs), list(outputs),
                              initializer=[numpy_helper.from_array(np.asarray(v), k)
                                           for k, v in dict(initializers).items()])
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in (domains or {}).items()]
    model = helper.make_model(graph, opset_imports=opsets, **model_fields)
    model.ir_version = IR_VERSION if opset >= 15 else 8
    return model


def save(model: onnx.ModelProto, directory: Path, name: str) -> Path:
    path = Path(directory) / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


# -- the models the property and API tests use ------------------------------------------------------------

def identity(dtype, shape=("batch", None)) -> onnx.ModelProto:
    return make_model([helper.make_node("Identity", ["x"], ["y"])],
                      [value_info("x", dtype, shape)], [value_info("y", dtype, shape)])


def add(dtype, shape=("batch", "n")) -> onnx.ModelProto:
    return make_model([helper.make_node("Add", ["a", "b"], ["c"])],
                      [value_info("a", dtype, shape), value_info("b", dtype, shape)], [value_info("c", dtype, shape)])


def matmul(dtype, k: int, n: int) -> onnx.ModelProto:
    """y[batch, n] = x[batch, k] @ w[k, n], both inputs given at run time."""
    return make_model([helper.make_node("MatMul", ["x", "w"], ["y"])],
                      [value_info("x", dtype, ("batch", k)), value_info("w", dtype, (k, n))],
                      [value_info("y", dtype, ("batch", n))])


def gemm(weight: np.ndarray, bias: np.ndarray) -> onnx.ModelProto:
    """y[B, n] = x[B, k] @ weight.T + bias (the benchmark's tiny model has this form)."""
    n, k = weight.shape
    return make_model([helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)],
                      [value_info("x", weight.dtype, ("B", k))], [value_info("y", weight.dtype, ("B", n))],
                      {"w": weight, "b": bias})


def cast(from_dtype, to_dtype) -> onnx.ModelProto:
    return make_model([helper.make_node("Cast", ["x"], ["y"], to=tensor_type(to_dtype))],
                      [value_info("x", from_dtype, ("n",))], [value_info("y", to_dtype, ("n",))])


def multi_io(dtype=np.float32) -> onnx.ModelProto:
    """Three inputs (one of fixed shape [3]), three outputs of different dtypes, declared in the order s, d, n."""
    nodes = [helper.make_node("Add", ["a", "b"], ["s"]),
             helper.make_node("Sub", ["a", "c"], ["d"]),
             helper.make_node("Neg", ["c"], ["n0"]),
             helper.make_node("Cast", ["n0"], ["n"], to=TensorProto.DOUBLE)]
    return make_model(nodes,
                      [value_info("a", dtype, ("batch", 3)), value_info("b", dtype, ("batch", 3)),
                       value_info("c", dtype, (3,))],
                      [value_info("s", dtype, ("batch", 3)), value_info("d", dtype, ("batch", 3)),
                       value_info("n", np.float64, (3,))])


def dense(n_in: int, hidden: int, n_out: int, seed: int = 0, channels: int | None = None) -> onnx.ModelProto:
    """x[B, n_in] (or [B, channels, n_in], flattened) -> Gemm(hidden) -> Relu -> Gemm(n_out): slow enough to time."""
    rng = np.random.default_rng(seed)
    width = n_in * (channels or 1)
    nodes, inputs = [], [value_info("x", np.float32, ("B", n_in) if channels is None else ("B", channels, n_in))]
    source = "x"
    if channels is not None:
        nodes.append(helper.make_node("Flatten", ["x"], ["flat"], axis=1))
        source = "flat"
    nodes += [helper.make_node("Gemm", [source, "w1", "b1"], ["h"], transB=1),
              helper.make_node("Relu", ["h"], ["r"]),
              helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], transB=1)]
    inits = {"w1": rng.standard_normal((hidden, width)) / np.sqrt(width),
             "b1": rng.standard_normal(hidden),
             "w2": rng.standard_normal((n_out, hidden)) / np.sqrt(hidden),
             "b2": rng.standard_normal(n_out)}
    inits = {k: v.astype(np.float32) for k, v in inits.items()}
    return make_model(nodes, inputs, [value_info("y", np.float32, ("B", n_out))], inits)


def with_metadata() -> onnx.ModelProto:
    model = make_model([helper.make_node("Identity", ["x"], ["y"])],
                       [value_info("x", np.float32, ("batch", "pmt"))], [value_info("y", np.float32, ("batch", "pmt"))],
                       name="vertex_graph", producer_name="juno-bridge-tests", producer_version="0.1",
                       domain="org.juno.test", model_version=42, doc_string="reconstructs the vertex")
    helper.set_model_props(model, {"detector": "CD-LPMT", "n_pmt": "17612"})
    return model


def string_input() -> onnx.ModelProto:
    """A string input: valid ONNX that the bridge must refuse by name (UnsupportedError)."""
    return make_model([helper.make_node("Identity", ["text"], ["copy"]),
                       helper.make_node("Identity", ["x"], ["y"])],
                      [value_info("text", TensorProto.STRING, ("n",)), value_info("x", np.float32, ("n",))],
                      [value_info("copy", TensorProto.STRING, ("n",)), value_info("y", np.float32, ("n",))])


def sequence_output() -> onnx.ModelProto:
    """A sequence-typed output beside a plain tensor one."""
    seq_type = helper.make_sequence_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT, None))
    return make_model([helper.make_node("SequenceConstruct", ["x", "x"], ["seq"]),
                       helper.make_node("Identity", ["x"], ["y"])],
                      [value_info("x", np.float32, ("n",))],
                      [helper.make_value_info("seq", seq_type), value_info("y", np.float32, ("n",))])


def sequence_input() -> onnx.ModelProto:
    seq_type = helper.make_sequence_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT, None))
    return make_model([helper.make_node("SequenceLength", ["items"], ["count"])],
                      [helper.make_value_info("items", seq_type)], [value_info("count", np.int64, ())])


def zipmap_output() -> onnx.ModelProto:
    """ai.onnx.ml ZipMap: a sequence of maps (what sklearn classifiers export) beside a tensor output."""
    seq_of_maps = helper.make_sequence_type_proto(
        helper.make_map_type_proto(TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, [])))
    return make_model([helper.make_node("ZipMap", ["x"], ["z"], domain="ai.onnx.ml", classlabels_int64s=[0, 1, 2]),
                       helper.make_node("Identity", ["x"], ["p"])],
                      [value_info("x", np.float32, ("n", 3))],
                      [helper.make_value_info("z", seq_of_maps), value_info("p", np.float32, ("n", 3))],
                      domains={"ai.onnx.ml": 3})


def bfloat16_add(shape=("batch", "n")) -> onnx.ModelProto:
    """c = a + b in bfloat16, added in float32 (ONNX Runtime's CPU kernels have no bfloat16 Add)."""
    bf16 = TensorProto.BFLOAT16
    return make_model([helper.make_node("Cast", ["a"], ["fa"], to=TensorProto.FLOAT),
                       helper.make_node("Cast", ["b"], ["fb"], to=TensorProto.FLOAT),
                       helper.make_node("Add", ["fa", "fb"], ["fc"]),
                       helper.make_node("Cast", ["fc"], ["c"], to=bf16)],
                      [value_info("a", bf16, shape), value_info("b", bf16, shape)], [value_info("c", bf16, shape)])


def bfloat16_io() -> onnx.ModelProto:
    """float32 in -> bfloat16 out (y), bfloat16 in -> float32 out (f)."""
    return make_model([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.BFLOAT16),
                       helper.make_node("Cast", ["b"], ["f"], to=TensorProto.FLOAT)],
                      [value_info("x", np.float32, ("n",)), value_info("b", TensorProto.BFLOAT16, ("n",))],
                      [value_info("y", TensorProto.BFLOAT16, ("n",)), value_info("f", np.float32, ("n",))])
