"""Helpers for the tests that compile and run native programs: compiling, a clean environment to run
them in (no Python paths, no LD_LIBRARY_PATH), and the small models they run on."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np

from .optional import require_tool  # noqa: F401  (the native tests take it from here)

REPO = Path(__file__).resolve().parents[2]
CPP_TESTS = REPO / "tests" / "native" / "cpp"
ORT_DECLARATIONS = REPO / "third_party" / "onnxruntime"


def build(cmd: list, cwd: Path | None = None) -> None:
    """Runs a compiler or CMake; a failure shows the command and everything it printed."""
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"build failed ({result.returncode}): {' '.join(map(str, cmd))}\n"
                             f"{result.stdout}\n{result.stderr}")


CXX = os.environ.get("CXX", "g++")


def compile_sdk_program(source: Path, out: Path, *flags: str) -> Path:
    """A C++ source compiled against the installed package's headers alone (a plugin: with -shared)."""
    import juno_bridge

    pkg = Path(juno_bridge.__file__).resolve().parent
    build([CXX, "-std=c++17", "-O1", "-g0", "-Wall", "-Wextra", "-Werror", source, "-o", out,
           f"-I{pkg / 'include'}", *flags])
    return out


def build_against_package(source: Path, exe: Path, optimization: str = "-O1") -> Path:
    """A C++ program compiled and linked against the installed package, as a user builds one."""
    import juno_bridge

    pkg = Path(juno_bridge.__file__).parent
    build(["g++", "-std=c++17", optimization, "-g0", source, f"-I{pkg / 'include'}", f"-L{pkg / 'lib'}",
           "-ljuno_bridge", f"-Wl,-rpath,{pkg / 'lib'}", "-o", exe])
    return exe


def write_slots_model(path: Path) -> Path:
    """The model tests/native/cpp/ort_slots.c checks: its names, values and metadata."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "x"], ["y"]), helper.make_node("Neg", ["n"], ["m"])], "slots_graph",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3]),
         helper.make_tensor_value_info("n", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3]),
         helper.make_tensor_value_info("m", TensorProto.INT64, [2])])
    model = helper.make_model(graph, producer_name="jb-slot-test", domain="org.juno.test",
                              doc_string="slot check model", model_version=7, ir_version=8,
                              opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(model, {"author": "juno", "purpose": "slots"})
    onnx.save(model, str(path))
    return path


def write_types_model(path: Path) -> Path:
    """The model of non-tensor types tests/native/cpp/ort_slots.c reads (its TYPE_* constants spell them):
    inputs x float[batch, 2], m map(string, tensor(double)); outputs z seq(map(int64, tensor(float))) (a
    classifier's ZipMap), o optional(tensor(float)), v double[?, 2]."""
    import onnx
    from onnx import TensorProto, helper

    scalar = helper.make_tensor_type_proto
    graph = helper.make_graph(
        [helper.make_node("ZipMap", ["x"], ["z"], domain="ai.onnx.ml", classlabels_int64s=[0, 1]),
         helper.make_node("Optional", ["x"], ["o"]),
         helper.make_node("DictVectorizer", ["m"], ["v"], domain="ai.onnx.ml", string_vocabulary=["a", "b"])],
        "types_graph",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2]),
         helper.make_value_info("m", helper.make_map_type_proto(TensorProto.STRING, scalar(TensorProto.DOUBLE, [])))],
        [helper.make_value_info("z", helper.make_sequence_type_proto(
            helper.make_map_type_proto(TensorProto.INT64, scalar(TensorProto.FLOAT, [])))),
         helper.make_value_info("o", helper.make_optional_type_proto(scalar(TensorProto.FLOAT, ["batch", 2]))),
         helper.make_tensor_value_info("v", TensorProto.DOUBLE, [None, 2])])
    model = helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17),
                                                                  helper.make_opsetid("ai.onnx.ml", 3)])
    onnx.save(model, str(path))
    return path


def clean_env() -> dict:
    """What a C++ framework job would have: no PYTHONPATH, no LD_LIBRARY_PATH. JUNO_BRIDGE_ONNXRUNTIME
    passes through, so the programs load the same ONNX Runtime as the Python side they are compared with."""
    return {k: v for k, v in os.environ.items()
            if k in ("PATH", "HOME", "LANG", "TMPDIR", "JUNO_BRIDGE_ONNXRUNTIME") and v}


def run_program(cmd: list, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], env=clean_env(), capture_output=True, text=True, timeout=timeout)


def deterministic_values(shape, dtype=np.float32) -> np.ndarray:
    """The input values the C and C++ programs generate: element i is ((37 i) mod 101) / 16 - 3, exact in
    float32 (cpp/tools/bench_loop.cpp, cpp/tools/ort_raw_loop.c, tests/native/cpp/run_model.*)."""
    n = int(np.prod(shape, dtype=np.int64))
    return (((np.arange(n, dtype=np.int64) * 37) % 101).astype(dtype) / 16 - 3).reshape(shape)


def write_mlp_model(path: Path, features: int = 8, hidden: int = 5, outputs: int = 4, seed: int = 3) -> Path:
    """A small float32 model with a dynamic batch: x[batch, F] -> Gemm -> Tanh -> Gemm -> y[batch, O],
    and s[batch] = ReduceSum(y, axis 1): two outputs, so subsets and mixed buffers can be checked."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = {
        "w1": rng.normal(size=(features, hidden)).astype(np.float32),
        "b1": rng.normal(size=(hidden,)).astype(np.float32),
        "w2": rng.normal(size=(hidden, outputs)).astype(np.float32),
        "b2": rng.normal(size=(outputs,)).astype(np.float32),
        "axes": np.array([1], dtype=np.int64),
    }
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]),
        helper.make_node("Tanh", ["h"], ["t"]),
        helper.make_node("Gemm", ["t", "w2", "b2"], ["y"]),
        helper.make_node("ReduceSum", ["y", "axes"], ["s"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", outputs]),
         helper.make_tensor_value_info("s", TensorProto.FLOAT, ["batch"])],
        initializer=[numpy_helper.from_array(v, k) for k, v in weights.items()])
    model = helper.make_model(graph, producer_name="juno-bridge-tests", ir_version=8,
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
