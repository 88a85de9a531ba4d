"""TensorFlow test models, saved once per test process (importing TensorFlow alone takes seconds).

Every builder is cached, so the session-scoped fixtures of all test_tf_*.py files share one SavedModel
of each model in one temporary directory. Two writers on purpose: `tf.saved_model.save` of a
tf.Module (tensors named after the tf.function's arguments) and Keras 3 `Model.export` (outputs named
output_0, ...), because they name their signature tensors differently.
"""
from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .optional import require

require("tf")  # a module-level skip (or failure under JUNO_BRIDGE_REQUIRE_ALL=1) for its importers

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's INFO lines would drown pytest's output
import tensorflow as tf  # noqa: E402

import juno_bridge  # noqa: E402

_DIR = Path(tempfile.mkdtemp(prefix="jb-tf-models-"))
atexit.register(shutil.rmtree, _DIR, True)
JUNO_PMTS = 17612


def _weights(seed: int, *shapes) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(s) / np.sqrt(s[0])).astype(np.float32) for s in shapes]


class Affine(tf.Module):
    """x[B, 8] -> y = x W + b, saved with tf.saved_model.save."""

    def __init__(self):
        super().__init__()
        w, b = _weights(0, (8, 4), (4,))
        self.w, self.b = tf.Variable(w), tf.Variable(b)

    @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32, name="x")])
    def serve(self, x):
        return {"y": tf.matmul(x, self.w) + self.b}

    @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32, name="x")])
    def halves(self, x):
        return {"half": 0.5 * x, "sum": tf.reduce_sum(x, axis=1)}


@functools.cache
def affine_module() -> Affine:
    return Affine()


@functools.cache
def tiny() -> Path:
    """tf.saved_model.save: signatures serving_default (x -> y) and halves (x -> half, sum)."""
    m = affine_module()
    path = _DIR / "tiny.savedmodel"
    tf.saved_model.save(m, str(path), signatures={"serving_default": m.serve, "halves": m.halves})
    return path


class Passthrough(tf.Module):
    """Returns its input itself: TensorFlow hands back the input's own buffer as the output."""

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def serve(self, x):
        return {"same": tf.identity(x), "twice": 2.0 * x}


@functools.cache
def passthrough() -> Path:
    m = Passthrough()
    path = _DIR / "passthrough.savedmodel"
    tf.saved_model.save(m, str(path), signatures={"serving_default": m.serve})
    return path


class Juno(tf.Module):
    """pmt[B, 2, 17612] -> flatten -> Dense 64 -> ReLU -> Dense 4: a JUNO-sized event batch."""

    def __init__(self):
        super().__init__()
        w1, b1, w2, b2 = _weights(1, (2 * JUNO_PMTS, 64), (64,), (64, 4), (4,))
        self.w1, self.b1, self.w2, self.b2 = (tf.Variable(v) for v in (w1, b1, w2, b2))

    @tf.function(input_signature=[tf.TensorSpec([None, 2, JUNO_PMTS], tf.float32, name="pmt")])
    def serve(self, pmt):
        h = tf.nn.relu(tf.matmul(tf.reshape(pmt, [-1, 2 * JUNO_PMTS]), self.w1) + self.b1)
        return {"y": tf.matmul(h, self.w2) + self.b2}


@functools.cache
def juno_module() -> Juno:
    return Juno()


@functools.cache
def juno() -> Path:
    m = juno_module()
    path = _DIR / "juno.savedmodel"
    tf.saved_model.save(m, str(path), signatures={"serving_default": m.serve})
    return path


@functools.cache
def keras_mlp():
    """Keras 3: x[B, 8] -> Dense 16 ReLU -> Dense 4, and the same network as an ONNX model.
    Returns (keras model, SavedModel directory with no suffix, .onnx path)."""
    import keras
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    keras.utils.set_random_seed(7)
    inp = keras.Input((8,), name="x")
    out = keras.layers.Dense(4)(keras.layers.Dense(16, activation="relu")(inp))
    model = keras.Model(inp, out)
    path = _DIR / "keras_mlp"  # a SavedModel directory under any name: found by its saved_model.pb
    model.export(str(path), verbose=False)
    (w1, b1), (w2, b2) = (layer.get_weights() for layer in model.layers[1:])
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("Gemm", ["r", "w2", "b2"], ["output_0"])], "keras_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("output_0", TensorProto.FLOAT, ["batch", 4])],
        initializer=[numpy_helper.from_array(np.asarray(v, np.float32), k)
                     for k, v in (("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2))])
    onnx_path = _DIR / "keras_mlp.onnx"
    onnx.save(helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)]), str(onnx_path))
    return model, path, onnx_path


# Models whose inputs are named so that their key order is not the order the model defines them in: the
# SignatureDef is a map (key order), the author's function has the order (see tf_input_order.cpp).
ORDERED_TWO = ("zeta_charge", "alpha_time")              # z * 10 + a
ORDERED_THREE = ("zeta_charge", "category", "alpha_time")  # z * 100 + category * 10 + a; category int32


@functools.cache
def keras_ordered(n: int):
    """Keras 3 functional model of ORDERED_TWO (n=2) or ORDERED_THREE (n=3), exported with Model.export.
    Returns (keras model, SavedModel directory)."""
    import keras

    if n == 2:
        z, a = (keras.Input((3,), name=name) for name in ORDERED_TWO)
        model = keras.Model([z, a], z * 10.0 + a)
    else:
        z = keras.Input((3,), name="zeta_charge")
        c = keras.Input((1,), name="category", dtype="int32")
        a = keras.Input((3,), name="alpha_time")
        model = keras.Model([z, c, a], z * 100.0 + keras.ops.cast(c, "float32") * 10.0 + a)
    path = _DIR / f"keras_ordered_{n}"
    model.export(str(path), verbose=False)
    return model, path


@functools.cache
def keras_dict_inputs():
    """Keras 3 model of ORDERED_TWO taking its inputs as a dict: the model gives them no order."""
    import keras

    z, a = (keras.Input((3,), name=name) for name in ORDERED_TWO)
    model = keras.Model({"zeta_charge": z, "alpha_time": a}, z * 10.0 + a)
    path = _DIR / "keras_dict_inputs"
    model.export(str(path), verbose=False)
    return model, path


class OrderedFunction(tf.Module):
    """A tf.function with an input_signature in ORDERED_TWO's order, saved with tf.saved_model.save."""

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name=name) for name in ORDERED_TWO])
    def serve(self, zeta_charge, alpha_time):
        return {"y": zeta_charge * 10.0 + alpha_time}


@functools.cache
def ordered_function() -> Path:
    path = _DIR / "ordered_function.savedmodel"
    tf.saved_model.save(OrderedFunction(), str(path))  # its one tf.function is the default signature
    return path


@functools.cache
def tf1_graph() -> Path:
    """A TensorFlow 1 style SavedModel (a graph and a SignatureDef, no functions) of ORDERED_TWO."""
    path = _DIR / "tf1_graph.savedmodel"
    v1 = tf.compat.v1
    with tf.Graph().as_default() as graph, v1.Session(graph=graph) as session:
        z, a = (v1.placeholder(tf.float32, [None, 3], name=name) for name in ORDERED_TWO)
        y = tf.identity(z * 10.0 + a, name="y")
        builder = v1.saved_model.Builder(str(path))
        signature = v1.saved_model.predict_signature_def({"zeta_charge": z, "alpha_time": a}, {"y": y})
        builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map={"serving_default": signature})
        builder.save()
    return path


def aligned(a: np.ndarray) -> np.ndarray:
    """A 64-byte aligned copy of `a` (juno_bridge.empty), as TensorFlow wants its inputs."""
    out = juno_bridge.empty(a.shape, a.dtype)
    out[...] = a
    return out


def unaligned(a: np.ndarray, offset: int = 16) -> np.ndarray:
    """A copy of `a` whose data start `offset` bytes past a 64-byte boundary (16: numpy's own guarantee)."""
    raw = juno_bridge.empty((a.nbytes + 64,), np.uint8)
    out = raw[offset:offset + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


DTYPES = ["float32", "float64", "float16", "int8", "uint8", "int16", "uint16", "int32", "int64", "uint32", "uint64",
          "bool"]


@functools.cache
def all_dtypes() -> Path:
    """One input per dtype juno-bridge passes, named after it; out_<dtype> is the input passed through."""
    specs = [tf.TensorSpec([None, 3], getattr(tf, d), name=d) for d in DTYPES]

    class AllDTypes(tf.Module):
        @tf.function(input_signature=specs)
        def serve(self, *xs):
            return {f"out_{d}": tf.identity(x) for d, x in zip(DTYPES, xs)}

    m = AllDTypes()
    path = _DIR / "all_dtypes.savedmodel"
    tf.saved_model.save(m, str(path), signatures={"serving_default": m.serve})
    return path
