"""A broad corpus of operators and small graphs: whatever the runtime can run must come out of juno-bridge with
the same bits as out of onnxruntime's own Python API (one thread, same optimisation level), whether the
runtime allocates the outputs or writes them into out= buffers."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from onnx import TensorProto, helper, numpy_helper

from helpers.bridge_runs import run_both_ways
from helpers.onnx_models import make_model, value_info
from helpers.reference import assert_results_equal, bridge_session, reference_run

F32, I64, BOOL = np.float32, np.int64, np.bool_


def single_node(op_type, feeds, outputs, inits=None, node_inputs=None, domain="", **attrs):
    """A one-node model: `feeds` are run-time inputs, `inits` constants, `outputs` [(name, dtype)]."""
    inits = inits or {}
    node = helper.make_node(op_type, node_inputs or [*feeds, *inits], [name for name, _ in outputs], domain=domain,
                            **attrs)
    domains = {"com.microsoft": 1, "ai.onnx.ml": 3} if domain else None
    model = make_model([node], [value_info(k, v.dtype, v.shape) for k, v in feeds.items()],
                       [value_info(name, dtype, None) for name, dtype in outputs], inits, domains=domains)
    return model, feeds


def rnn_case(op_type, rng, gates, **attrs):
    seq, batch, size, hidden = 5, 2, 3, 4
    x = rng.standard_normal((seq, batch, size)).astype(F32)
    inits = {"W": rng.standard_normal((1, gates * hidden, size)).astype(F32),
             "R": rng.standard_normal((1, gates * hidden, hidden)).astype(F32),
             "B": rng.standard_normal((1, 2 * gates * hidden)).astype(F32)}
    outputs = [("Y", F32), ("Y_h", F32)] + ([("Y_c", F32)] if op_type == "LSTM" else [])
    return single_node(op_type, {"X": x}, outputs, inits, hidden_size=hidden, **attrs)


def if_case(rng, take_then):
    x = rng.standard_normal((3, 4)).astype(F32)
    two = helper.make_node("Constant", [], ["two"], value=numpy_helper.from_array(np.array(2, F32)))
    then_graph = helper.make_graph([two, helper.make_node("Mul", ["x", "two"], ["then_out"])], "then", [],
                                   [value_info("then_out", F32, (3, 4))])
    else_graph = helper.make_graph([helper.make_node("Neg", ["x"], ["else_out"])], "else", [],
                                   [value_info("else_out", F32, (3, 4))])
    node = helper.make_node("If", ["cond"], ["y"], then_branch=then_graph, else_branch=else_graph)
    model = make_model([node], [value_info("cond", BOOL, ()), value_info("x", F32, (3, 4))],
                       [value_info("y", F32, None)])
    return model, {"cond": np.array(take_then), "x": x}


def loop_case(rng):
    """v <- v + x, four times, with each step's v as a scan output (shape [4, 3])."""
    x = rng.standard_normal(3).astype(F32)
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Add", ["v_in", "x"], ["v_out"]),
         helper.make_node("Identity", ["v_out"], ["scan_out"])], "body",
        [value_info("i", I64, ()), value_info("cond_in", BOOL, ()), value_info("v_in", F32, (3,))],
        [value_info("cond_out", BOOL, ()), value_info("v_out", F32, (3,)), value_info("scan_out", F32, (3,))])
    node = helper.make_node("Loop", ["trips", "keep_going", "v0"], ["v_final", "steps"], body=body)
    model = make_model([node], [value_info("x", F32, (3,)), value_info("v0", F32, (3,))],
                       [value_info("v_final", F32, None), value_info("steps", F32, None)],
                       {"trips": np.array(4, I64), "keep_going": np.array(True)})
    return model, {"x": x, "v0": rng.standard_normal(3).astype(F32)}


def mlp_case(rng):
    """MatMul + Add + Relu + MatMul + Softmax: the optimiser fuses these at level 'all'."""
    x = rng.standard_normal((6, 10)).astype(F32)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h0"]), helper.make_node("Add", ["h0", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["h2"]), helper.make_node("MatMul", ["h2", "w2"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["p"], axis=-1)]
    inits = {"w1": rng.standard_normal((10, 16)).astype(F32), "b1": rng.standard_normal(16).astype(F32),
             "w2": rng.standard_normal((16, 5)).astype(F32)}
    return make_model(nodes, [value_info("x", F32, ("batch", 10))],
                      [value_info("logits", F32, ("batch", 5)), value_info("p", F32, ("batch", 5))], inits), {"x": x}


def passthrough_case(rng):
    """Graph outputs that are a graph input and an initializer, beside a computed one."""
    model = make_model([helper.make_node("Neg", ["x"], ["n"])], [value_info("x", F32, ("n",))],
                       [value_info("x", F32, ("n",)), value_info("n", F32, ("n",)), value_info("k", F32, (2,))],
                       {"k": np.array([7, 8], F32)})
    return model, {"x": rng.standard_normal(5).astype(F32)}


def f(rng, *shape):
    return rng.standard_normal(shape).astype(F32)


CASES = {
    "Conv": lambda r: single_node("Conv", {"X": f(r, 2, 3, 9, 9)}, [("Y", F32)],
                                  {"W": f(r, 4, 3, 3, 3), "B": f(r, 4)}, strides=[2, 2], pads=[1, 1, 1, 1]),
    "Conv_grouped_dilated": lambda r: single_node("Conv", {"X": f(r, 1, 4, 8, 8)}, [("Y", F32)],
                                                  {"W": f(r, 4, 2, 3, 3)}, group=2, dilations=[2, 2]),
    "ConvTranspose": lambda r: single_node("ConvTranspose", {"X": f(r, 1, 2, 5, 5)}, [("Y", F32)],
                                           {"W": f(r, 2, 3, 3, 3)}, strides=[2, 2], output_padding=[1, 1]),
    "MaxPool_with_indices": lambda r: single_node("MaxPool", {"X": f(r, 2, 3, 8, 8)}, [("Y", F32), ("I", I64)],
                                                  kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    "AveragePool": lambda r: single_node("AveragePool", {"X": f(r, 2, 3, 7, 7)}, [("Y", F32)], kernel_shape=[2, 2],
                                         strides=[2, 2], ceil_mode=1, count_include_pad=1),
    "GlobalAveragePool": lambda r: single_node("GlobalAveragePool", {"X": f(r, 2, 3, 5, 6)}, [("Y", F32)]),
    "BatchNormalization": lambda r: single_node(
        "BatchNormalization", {"X": f(r, 2, 3, 4, 4)}, [("Y", F32)],
        {"scale": f(r, 3), "B": f(r, 3), "mean": f(r, 3), "var": np.abs(f(r, 3)) + 0.1}),
    "InstanceNormalization": lambda r: single_node("InstanceNormalization", {"X": f(r, 2, 3, 5)}, [("Y", F32)],
                                                   {"scale": f(r, 3), "B": f(r, 3)}),
    "LayerNormalization": lambda r: single_node("LayerNormalization", {"X": f(r, 3, 5, 8)}, [("Y", F32)],
                                                {"Scale": f(r, 8), "B": f(r, 8)}, axis=-1, epsilon=1e-5),
    "Softmax": lambda r: single_node("Softmax", {"X": f(r, 4, 7)}, [("Y", F32)], axis=-1),
    "LogSoftmax": lambda r: single_node("LogSoftmax", {"X": f(r, 3, 4, 5)}, [("Y", F32)], axis=1),
    "Gelu_tanh": lambda r: single_node("Gelu", {"X": f(r, 4, 9)}, [("Y", F32)], approximate="tanh"),
    "Gemm_transA_alpha_beta": lambda r: single_node("Gemm", {"A": f(r, 5, 3)}, [("Y", F32)],
                                                    {"B": f(r, 5, 4), "C": f(r, 4)}, transA=1, alpha=0.5, beta=2.0),
    "MatMul_broadcast": lambda r: single_node("MatMul", {"A": f(r, 2, 1, 3, 4), "B": f(r, 5, 4, 6)}, [("Y", F32)]),
    "Einsum": lambda r: single_node("Einsum", {"a": f(r, 2, 3, 4), "b": f(r, 2, 4, 5)}, [("y", F32)],
                                    equation="bij,bjk->bik"),
    "Reshape": lambda r: single_node("Reshape", {"X": f(r, 2, 3, 4)}, [("Y", F32)], {"shape": np.array([4, -1], I64)}),
    "Transpose": lambda r: single_node("Transpose", {"X": f(r, 2, 3, 4)}, [("Y", F32)], perm=[2, 0, 1]),
    "Concat": lambda r: single_node("Concat", {"a": f(r, 2, 3), "b": f(r, 2, 5)}, [("y", F32)], axis=1),
    "Split_three_outputs": lambda r: single_node("Split", {"X": f(r, 6, 4)}, [("a", F32), ("b", F32), ("c", F32)],
                                                 {"split": np.array([1, 2, 3], I64)}, axis=0),
    "Slice_steps": lambda r: single_node("Slice", {"X": f(r, 5, 6, 7)}, [("Y", F32)],
                                         {"starts": np.array([1, 0], I64), "ends": np.array([5, -1], I64),
                                          "axes": np.array([0, 2], I64), "steps": np.array([2, 3], I64)}),
    "Gather_negative_indices": lambda r: single_node("Gather",
                                                     {"X": f(r, 5, 4), "idx": np.array([[0, 4], [2, -1]], I64)},
                                                     [("Y", F32)], axis=0),
    "GatherElements": lambda r: single_node("GatherElements", {"X": f(r, 3, 4), "idx": r.integers(0, 4, (3, 2))},
                                            [("Y", F32)], axis=1),
    "ScatterElements_add": lambda r: single_node(
        "ScatterElements", {"X": f(r, 3, 4), "idx": np.array([[1, 0], [3, 3], [2, 1]], I64), "u": f(r, 3, 2)},
        [("Y", F32)], axis=1, reduction="add"),
    "Squeeze": lambda r: single_node("Squeeze", {"X": f(r, 1, 3, 1, 4)}, [("Y", F32)], {"axes": np.array([0, 2], I64)}),
    "Unsqueeze": lambda r: single_node("Unsqueeze", {"X": f(r, 3, 4)}, [("Y", F32)], {"axes": np.array([1, -1], I64)}),
    "Expand": lambda r: single_node("Expand", {"X": f(r, 3, 1)}, [("Y", F32)], {"shape": np.array([2, 3, 4], I64)}),
    "Tile": lambda r: single_node("Tile", {"X": f(r, 2, 3, 1)}, [("Y", F32)], {"repeats": np.array([2, 1, 3], I64)}),
    "Pad_reflect": lambda r: single_node("Pad", {"X": f(r, 2, 4, 5)}, [("Y", F32)],
                                         {"pads": np.array([0, 1, 2, 0, 1, 1], I64)}, mode="reflect"),
    "Flatten": lambda r: single_node("Flatten", {"X": f(r, 2, 3, 4, 5)}, [("Y", F32)], axis=2),
    "DepthToSpace": lambda r: single_node("DepthToSpace", {"X": f(r, 1, 8, 2, 3)}, [("Y", F32)], blocksize=2,
                                          mode="CRD"),
    "ArgMax_last_index": lambda r: single_node("ArgMax", {"X": r.integers(0, 3, (4, 6)).astype(F32)}, [("Y", I64)],
                                               axis=1, keepdims=1, select_last_index=1),
    "ArgMin": lambda r: single_node("ArgMin", {"X": f(r, 4, 6)}, [("Y", I64)], axis=0, keepdims=0),
    "TopK": lambda r: single_node("TopK", {"X": f(r, 3, 10)}, [("values", F32), ("indices", I64)],
                                  {"K": np.array([4], I64)}, axis=-1, largest=1, sorted=1),
    "CumSum_exclusive_reverse": lambda r: single_node("CumSum", {"X": f(r, 4, 5)}, [("Y", F32)],
                                                      {"axis": np.array(1, I64)}, exclusive=1, reverse=1),
    "Where": lambda r: single_node("Where", {"c": r.random((3, 4)) > 0.5, "a": f(r, 3, 4), "b": f(r, 1, 4)},
                                   [("y", F32)]),
    "Equal_int": lambda r: single_node("Equal", {"a": r.integers(0, 3, (3, 4)), "b": r.integers(0, 3, (4,))},
                                       [("y", BOOL)]),
    "Greater": lambda r: single_node("Greater", {"a": f(r, 3, 4), "b": f(r, 3, 1)}, [("y", BOOL)]),
    "Not": lambda r: single_node("Not", {"x": r.random((5,)) > 0.5}, [("y", BOOL)]),
    "And": lambda r: single_node("And", {"a": r.random((2, 5)) > 0.5, "b": r.random((5,)) > 0.5}, [("y", BOOL)]),
    "Mod_int32": lambda r: single_node("Mod", {"a": r.integers(-50, 50, (6,), dtype=np.int32),
                                               "b": r.integers(1, 7, (6,), dtype=np.int32)}, [("y", np.int32)]),
    "Pow": lambda r: single_node("Pow", {"a": np.abs(f(r, 3, 4)), "b": f(r, 4)}, [("y", F32)]),
    "Clip": lambda r: single_node("Clip", {"X": f(r, 10)}, [("Y", F32)],
                                  {"min": np.array(-0.5, F32), "max": np.array(0.7, F32)}),
    "Resize_linear": lambda r: single_node("Resize", {"X": f(r, 1, 2, 4, 4)}, [("Y", F32)],
                                           {"scales": np.array([1, 1, 2, 1.5], F32)}, node_inputs=["X", "", "scales"],
                                           mode="linear"),
    "Resize_nearest_sizes": lambda r: single_node("Resize", {"X": f(r, 1, 1, 3, 5)}, [("Y", F32)],
                                                  {"sizes": np.array([1, 1, 7, 4], I64)},
                                                  node_inputs=["X", "", "", "sizes"], mode="nearest"),
    "LSTM": lambda r: rnn_case("LSTM", r, 4),
    "GRU_linear_before_reset": lambda r: rnn_case("GRU", r, 3, linear_before_reset=1),
    "Range_data_dependent": lambda r: single_node("Range", {"start": np.array(2, I64), "limit": np.array(17, I64),
                                                            "delta": np.array(3, I64)}, [("y", I64)]),
    "Shape_start": lambda r: single_node("Shape", {"X": f(r, 2, 3, 4)}, [("Y", I64)], start=1),
    "ConstantOfShape": lambda r: single_node("ConstantOfShape", {"shape": np.array([2, 3], I64)}, [("Y", F32)],
                                             value=numpy_helper.from_array(np.array([1.5], F32))),
    "NonZero": lambda r: single_node("NonZero", {"X": r.random((3, 5)) > 0.6}, [("Y", I64)]),
    "Unique_four_outputs": lambda r: single_node("Unique", {"X": r.integers(0, 5, (12,))},
                                                 [("Y", I64), ("indices", I64), ("inverse", I64), ("counts", I64)],
                                                 sorted=1),
    "OneHot": lambda r: single_node("OneHot", {"idx": np.array([0, 3, -1, 2], I64)}, [("Y", F32)],
                                    {"depth": np.array(4, I64), "values": np.array([0, 1], F32)}),
    "Trilu_lower": lambda r: single_node("Trilu", {"X": f(r, 4, 5)}, [("Y", F32)], {"k": np.array(1, I64)}, upper=0),
    "QuantizeLinear_uint8": lambda r: single_node("QuantizeLinear", {"x": f(r, 2, 6)}, [("y", np.uint8)],
                                                  {"scale": np.array(0.05, F32), "zero": np.array(128, np.uint8)}),
    "DequantizeLinear_int8": lambda r: single_node("DequantizeLinear",
                                                   {"x": r.integers(-128, 128, (2, 6), dtype=np.int8)}, [("y", F32)],
                                                   {"scale": np.array(0.1, F32), "zero": np.array(3, np.int8)}),
    "Cast_to_float16": lambda r: single_node("Cast", {"x": f(r, 3, 4) * 100}, [("y", np.float16)],
                                             to=TensorProto.FLOAT16),
    "If_then": lambda r: if_case(r, True),
    "If_else": lambda r: if_case(r, False),
    "Loop_with_scan_output": loop_case,
    "MLP_fused": mlp_case,
    "Passthrough_outputs": passthrough_case,
    "Constant_node_output": lambda r: single_node("Constant", {}, [("c", F32)],
                                                  value=numpy_helper.from_array(f(r, 2, 3))),
    "NonZero_none": lambda r: single_node("NonZero", {"X": np.zeros((2, 3), BOOL)}, [("Y", I64)]),
    "FusedMatMul_com_microsoft": lambda r: single_node("FusedMatMul", {"a": f(r, 2, 3), "b": f(r, 4, 3)}, [("y", F32)],
                                                       domain="com.microsoft", alpha=0.5, transB=1),
    "LinearRegressor_ai_onnx_ml": lambda r: single_node("LinearRegressor", {"x": f(r, 4, 3)}, [("y", F32)],
                                                        domain="ai.onnx.ml", coefficients=[1.0, -2.0, 3.0],
                                                        intercepts=[0.5]),
}

for _op in ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "ReduceLogSumExp"):
    CASES[_op] = (lambda op: lambda r: single_node(op, {"X": f(r, 3, 4, 5)}, [("Y", F32)],
                                                   {"axes": np.array([1], I64)}, keepdims=0))(_op)


@pytest.mark.parametrize("optimization", ["disable", "all"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_operator_matches_onnxruntime_bitwise(case, optimization):
    model, feeds = CASES[case](np.random.default_rng(sum(map(ord, case))))
    data = model.SerializeToString()
    expected = reference_run(data, feeds, optimization)
    got = run_both_ways(bridge_session(data, optimization), feeds, expected)
    assert_results_equal(got, expected)


UNARY = ["Relu", "Sigmoid", "Tanh", "Gelu", "Erf", "Exp", "Log", "Sqrt", "Abs", "Neg", "Floor", "Ceil", "Round",
         "Sign", "Softplus", "Softsign", "Elu", "Selu", "LeakyRelu", "HardSigmoid", "HardSwish", "Reciprocal",
         "Sin", "Cos", "Atan", "Mish", "IsNaN", "IsInf"]


@pytest.fixture(scope="module")
def unary_sessions(model_path):
    """op -> (juno-bridge session, model path), over float32 tensors of any shape."""
    sessions = {}
    for op in UNARY:
        out = BOOL if op.startswith("Is") else F32
        model = make_model([helper.make_node(op, ["x"], ["y"])], [value_info("x", F32, None)],
                           [value_info("y", out, None)])
        path = model_path(f"unary_{op}", lambda m=model: m)
        sessions[op] = (bridge_session(path), path)
    return sessions


@given(op=st.sampled_from(UNARY), data=st.data(),
       shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6))
def test_elementwise_op_on_any_float32_values_matches_onnxruntime_bitwise(unary_sessions, op, data, shape):
    # Any float32 bits, NaN, infinities, subnormals and -0.0 included: the same kernel must give the same bits.
    x = data.draw(hnp.arrays(F32, shape))
    session, path = unary_sessions[op]
    expected = reference_run(path, {"x": x})
    assert_results_equal(run_both_ways(session, {"x": x}, expected), expected)


BINARY = {"Add": None, "Sub": None, "Mul": None, "Div": None, "Max": None, "Min": None,
          "Equal": BOOL, "Greater": BOOL, "Less": BOOL}  # op -> output dtype (None: the input's)
BINARY_DTYPES = [np.dtype(d) for d in ("float16", "float32", "float64", "int32", "int64")]


@pytest.fixture(scope="module")
def binary_sessions(model_path):
    """(op, dtype) -> (juno-bridge session, model path), inputs of any rank that broadcast."""
    sessions = {}
    for op, out in BINARY.items():
        for dtype in BINARY_DTYPES:
            model = make_model([helper.make_node(op, ["a", "b"], ["y"])],
                               [value_info("a", dtype, None), value_info("b", dtype, None)],
                               [value_info("y", out or dtype, None)])
            path = model_path(f"binary_{op}_{dtype}", lambda m=model: m)
            sessions[op, dtype] = (bridge_session(path), path)
    return sessions


@given(op=st.sampled_from(sorted(BINARY)), dtype=st.sampled_from(BINARY_DTYPES), data=st.data(),
       shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, min_side=0, max_side=5))
def test_broadcasting_binary_op_matches_onnxruntime_bitwise(binary_sessions, op, dtype, data, shapes):
    if dtype.kind == "i":  # integer division by zero traps in the runtime itself: keep divisors non-zero
        elements = st.integers(1, 100) if op == "Div" else st.integers(-1000, 1000)
    else:
        elements = None  # any bits
    a = data.draw(hnp.arrays(dtype, shapes.input_shapes[0], elements=elements))
    b = data.draw(hnp.arrays(dtype, shapes.input_shapes[1], elements=elements))
    session, path = binary_sessions[op, dtype]
    expected = reference_run(path, {"a": a, "b": b})
    assert expected["y"].shape == shapes.result_shape
    assert_results_equal(run_both_ways(session, {"a": a, "b": b}, expected), expected)
