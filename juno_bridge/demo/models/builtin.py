"""The benchmark models, written as ONNX with fixed weights (seeded), cached on first use.

- ``tiny``: input ``x`` [B, 8] -> Gemm -> ``y`` [B, 4]: the per-call overhead of each method.
- ``juno``: input ``pmt`` [B, 2, 17612] float32 (nPE and first-hit time of every LPMT) -> Flatten ->
  Gemm 64 -> Relu -> Gemm 4 -> ``y`` [B, 4]: a JUNO-sized dense event buffer.

Weights are not shipped (the JUNO-sized one is 9 MB): they are generated from a seed, so every
machine gets bit-identical files.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from juno_bridge.atomic_file import staged
from juno_bridge._hits import NUM_LPMT
from juno_bridge.paths import cache_dir
# Newest IR version ONNX Runtime 1.16 (our oldest supported release) reads; keeps models portable.
IR_VERSION = 8
OPSET = 17
# Bumped whenever the generator changes, so a stale cached file is never used.
MODEL_REVISION = "r1"


def _gemm_model(name: str, input_name: str, input_dims: list, layers: list[int], seed: int):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, weights = [], []
    current = input_name
    features = int(np.prod(input_dims[1:]))
    if len(input_dims) > 2:
        nodes.append(helper.make_node("Flatten", [current], ["flat"], axis=1))
        current = "flat"
    for i, width in enumerate(layers):
        w = (rng.standard_normal((features, width)) / np.sqrt(features)).astype(np.float32)
        b = (0.1 * rng.standard_normal(width)).astype(np.float32)
        weights += [numpy_helper.from_array(w, f"W{i}"), numpy_helper.from_array(b, f"b{i}")]
        out = "y" if i == len(layers) - 1 else f"h{i}"
        nodes.append(helper.make_node("Gemm", [current, f"W{i}", f"b{i}"], [out]))
        current = out
        if i < len(layers) - 1:
            nodes.append(helper.make_node("Relu", [current], [f"a{i}"]))
            current = f"a{i}"
        features = width
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, input_dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", layers[-1]])],
        weights)
    model = helper.make_model(graph, producer_name="juno-bridge", ir_version=IR_VERSION,
                              opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    return model


BUILTIN_MODELS = {
    "tiny": dict(input_name="x", input_dims=["B", 8], layers=[4], seed=1),
    "juno": dict(input_name="pmt", input_dims=["B", 2, NUM_LPMT], layers=[64, 4], seed=2),
}


def builtin_model(name: str) -> Path:
    """Path of the built-in ONNX model ``name``, written into the cache on first use."""
    if name not in BUILTIN_MODELS:
        raise KeyError(f"unknown built-in model {name!r}; known: {', '.join(BUILTIN_MODELS)}")
    path = cache_dir() / f"{name}-{MODEL_REVISION}.onnx"
    if not path.exists():
        import onnx

        model = _gemm_model(name, **BUILTIN_MODELS[name])
        with staged(path) as tmp:  # atomic: concurrent first uses never see half a file
            onnx.save(model, tmp)
    return path


def builtin_input(name: str, batch: int, seed: int = 0) -> np.ndarray:
    """A deterministic C-contiguous input batch for a built-in model."""
    spec = BUILTIN_MODELS[name]
    shape = [batch, *spec["input_dims"][1:]]
    return np.random.default_rng(seed).random(shape, dtype=np.float32)
