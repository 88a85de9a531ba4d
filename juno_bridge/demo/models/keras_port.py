"""The default model's network in Keras 3 (TensorFlow), with the weights carried over from torch: the
graph of ``network`` run through keras.ops (``KerasOps``), so a SavedModel of it runs through the
TensorFlow plugin and gives the torch outputs (checked to 1e-5 by the tests).

The fixed stages and the learned time-response tables are one Keras layer (``TimeOfFlightFit``); the
head is three ``Dense`` layers. torch's ``Linear.weight`` is [out, in], a Dense kernel [in, out].
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
from keras import ops

from juno_bridge.atomic_file import staged
from juno_bridge.demo.detector import N_LPMT
from juno_bridge.demo.models import graph


class KerasOps:
    """What the graph needs of an array library (graph.NumpyOps, network.TorchOps), in keras.ops."""
    matmul, sqrt, exp, log, floor, sum = ops.matmul, ops.sqrt, ops.exp, ops.log, ops.floor, ops.sum
    maximum, minimum, stack, concat, reshape = ops.maximum, ops.minimum, ops.stack, ops.concatenate, ops.reshape

    @staticmethod
    def to_index(x):
        return ops.cast(x, "int32")

    @staticmethod
    def fired(npe):
        return ops.cast(npe > 0, npe.dtype)

    @staticmethod
    def transpose(x):
        return ops.transpose(x, (0, 2, 1))

    @staticmethod
    def table_index(npe, type_base):
        return ops.cast(ops.clip(ops.round(npe), 0.0, float(graph.N_PE)), "int32") + type_base

    @staticmethod
    def take(table, index):
        return ops.take(ops.reshape(table, (-1,)), index)

    @staticmethod
    def take_columns(table, index):
        return ops.take(table, index, axis=1)


class TimeOfFlightFit(keras.layers.Layer):
    """Stages 1-4 of the default model (graph.fixed_graph) with the learned time-response tables as
    this layer's weights. Returns v0, v1, E1, the total charge and the fired PMTs."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        geo = graph.geometry()
        geo["type_base"] = geo["type_base"].astype(np.int32)
        for name in ("positions", "positions_t", "type_base", "light_table"):
            geo[name] = ops.convert_to_tensor(geo[name])
        self.geometry = SimpleNamespace(**geo)
        shape = (graph.N_TYPES, graph.N_PE)
        self.time_offset = self.add_weight(shape=shape, initializer="zeros", name="time_offset")
        self.log_weight = self.add_weight(shape=shape, initializer="zeros", name="log_weight")

    def call(self, pmt):
        return graph.fixed_graph(KerasOps, pmt, self.geometry, self.time_offset, self.log_weight)


def keras_model(arrays: dict[str, np.ndarray] | None = None) -> keras.Model:
    """The default model as a Keras functional model, outputs ``{"vertex", "energy"}``, with the shipped
    weights (or ``arrays``, as network.VertexEnergyNet.arrays() gives them)."""
    from juno_bridge.demo.models import default

    arrays = default.weights() if arrays is None else arrays
    pmt = keras.Input((2, N_LPMT), name="pmt", dtype="float32")
    fit = TimeOfFlightFit(name="time_of_flight_fit")
    v0, v1, energy1, charge, hits = fit(pmt)
    features = graph.head_features(KerasOps, v0, v1, energy1, charge, hits)
    out = (features - arrays["feature_mean"]) / arrays["feature_std"]
    dense = [keras.layers.Dense(graph.HIDDEN, activation="silu", name="head0"),
             keras.layers.Dense(graph.HIDDEN, activation="silu", name="head1"),
             keras.layers.Dense(2, name="head2")]
    for layer in dense:
        out = layer(out)
    vertex, energy = graph.apply_head(KerasOps, v1, energy1, out)
    model = keras.Model(pmt, {"vertex": vertex, "energy": energy}, name="juno_bridge_default")
    fit.set_weights([arrays["time_offset"], arrays["log_weight"]])
    for i, layer in enumerate(dense):
        layer.set_weights([arrays[f"head{i}.weight"].T, arrays[f"head{i}.bias"]])
    return model


def saved_model(cache) -> Path:
    """The default model as a TensorFlow SavedModel (signature ``serving_default``: ``pmt`` ->
    ``vertex``, ``energy``) in ``cache``, exported on first use."""
    from juno_bridge.demo.models import default

    path = Path(cache) / f"default-{default.MODEL_REVISION}.savedmodel"
    if not path.exists():
        with staged(path) as tmp:
            keras_model().export(str(tmp), format="tf_saved_model", verbose=False)
    return path
