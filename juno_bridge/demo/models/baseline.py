"""The baseline vertex and energy reconstruction: a charge centroid with a fitted polynomial (the default
model before the trained network of ``default``; kept as the yardstick the network is measured against).

Physically motivated features computed inside the model from the dense PMT buffer
``pmt`` [B, 2, 17612] (channel 0 nPE, channel 1 first-hit time):
    Q = sum of nPE,  c = (nPE @ PMT positions) / Q   (the charge-weighted centroid, metres),
    rho = |c|^2 / R_LS^2,
and a fitted polynomial correction (least squares on toy events, no torch, nothing downloaded):
    vertex = c * (a0 + a1 rho + ... ),   energy = Q / light_yield * (b0 + b1 rho + ... ).
The centroid is pulled towards the centre (every PMT sees some light), the correction stretches it
back; the energy polynomial corrects the detector's non-uniformity. The same arithmetic exists as an
ONNX graph (``build_onnx``), in numpy (``reconstruct``, the Python-algorithm form) and as a torch
module (``torch_module``); all read the coefficients shipped in ``baseline_model.json``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from juno_bridge.atomic_file import staged
from juno_bridge.demo.detector import LS_RADIUS_M, N_LPMT, toy_detector
from juno_bridge.demo.toymc import LIGHT_YIELD_PE_PER_MEV, Events, generate

COEFFICIENTS = Path(__file__).with_name("baseline_model.json")
VERTEX_DEGREE = 4
ENERGY_DEGREE = 5
TRAINING = dict(n_events=20000, seed=12345, energy_mev=(0.5, 10.0))
MODEL_REVISION = "r1"


def sparse_features(events: Events) -> tuple[np.ndarray, np.ndarray]:
    """Q [N] and centroid c [N, 3] straight from the sparse hits (the same sums the graph does densely)."""
    pos = toy_detector().lpmt_pos
    event = np.repeat(np.arange(len(events)), np.diff(events.offsets))
    q = np.bincount(event, weights=events.npe, minlength=len(events))
    moment = np.stack([np.bincount(event, weights=events.npe * pos[events.pmt_id, k], minlength=len(events))
                       for k in range(3)], axis=1)
    return q, moment / np.maximum(q, 1e-6)[:, None]


def _powers(rho: np.ndarray, degree: int) -> np.ndarray:
    return rho[:, None] ** np.arange(degree + 1)


def train(n_events: int = TRAINING["n_events"], seed: int = TRAINING["seed"],
          energy_mev: tuple[float, float] = TRAINING["energy_mev"]) -> dict:
    """Fits the coefficients by linear least squares on toy events; returns them with provenance."""
    events = generate(n_events, seed=seed, energy_mev=energy_mev)
    q, c = sparse_features(events)
    rho = (c * c).sum(axis=1) / LS_RADIUS_M**2
    # vertex_k = c_k * sum_j a_j rho^j: one linear system over all three coordinates.
    design = (c[:, :, None] * _powers(rho, VERTEX_DEGREE)[:, None, :]).reshape(-1, VERTEX_DEGREE + 1)
    a, *_ = np.linalg.lstsq(design, events.vertex.astype(np.float64).reshape(-1), rcond=None)
    # energy = Q / LY * sum_j b_j rho^j, fitted in relative terms so every energy weighs the same.
    energy = events.energy.astype(np.float64)
    design = (q / LIGHT_YIELD_PE_PER_MEV)[:, None] * _powers(rho, ENERGY_DEGREE) / energy[:, None]
    b, *_ = np.linalg.lstsq(design, np.ones_like(energy), rcond=None)
    return {"revision": MODEL_REVISION, "vertex_coefficients": a.tolist(), "energy_coefficients": b.tolist(),
            "light_yield_pe_per_mev": LIGHT_YIELD_PE_PER_MEV, "ls_radius_m": LS_RADIUS_M,
            "training": {"n_events": n_events, "seed": seed, "energy_mev": list(energy_mev)}}


def coefficients() -> dict:
    return json.loads(COEFFICIENTS.read_text())


def reconstruct(pmt: np.ndarray, coeffs: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The model in numpy: ``pmt`` [B, 2, 17612] float32 -> vertex [B, 3], energy [B] (float32)."""
    k = coeffs or coefficients()
    pos = toy_detector().lpmt_pos.astype(np.float32)
    npe = pmt[:, 0, :]
    q = npe.sum(axis=1, keepdims=True, dtype=np.float32)
    c = (npe @ pos) / np.maximum(q, np.float32(1e-6))
    rho = (c * c).sum(axis=1, keepdims=True) / np.float32(k["ls_radius_m"] ** 2)
    vertex = c * _horner(rho, k["vertex_coefficients"])
    energy = q * _horner(rho, k["energy_coefficients"]) / np.float32(k["light_yield_pe_per_mev"])
    return vertex.astype(np.float32), energy[:, 0].astype(np.float32)


def _horner(x: np.ndarray, coeffs: list[float]) -> np.ndarray:
    result = np.full_like(x, np.float32(coeffs[-1]))
    for a in reversed(coeffs[:-1]):
        result = result * x + np.float32(a)
    return result


def build_onnx(path: str | os.PathLike, coeffs: dict | None = None) -> Path:
    """Writes the model as ONNX: input ``pmt`` [B, 2, 17612] -> ``vertex`` [B, 3], ``energy`` [B]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from juno_bridge.demo.models.builtin import IR_VERSION, OPSET

    k = coeffs or coefficients()
    pos = toy_detector().lpmt_pos.astype(np.float32)

    def const(name, value):
        return numpy_helper.from_array(np.asarray(value, np.float32), name)

    inits = [const("positions", pos), const("eps", 1e-6), const("inv_r2", 1.0 / k["ls_radius_m"] ** 2),
             const("inv_ly", 1.0 / k["light_yield_pe_per_mev"]),
             numpy_helper.from_array(np.array(0, np.int64), "npe_channel"),
             numpy_helper.from_array(np.array([1], np.int64), "axis1")]
    nodes = [
        helper.make_node("Gather", ["pmt", "npe_channel"], ["npe"], axis=1),          # [B, N]
        helper.make_node("ReduceSum", ["npe", "axis1"], ["q"], keepdims=1),           # [B, 1]
        helper.make_node("MatMul", ["npe", "positions"], ["moment"]),                  # [B, 3]
        helper.make_node("Max", ["q", "eps"], ["q_safe"]),
        helper.make_node("Div", ["moment", "q_safe"], ["centroid"]),
        helper.make_node("Mul", ["centroid", "centroid"], ["c2"]),
        helper.make_node("ReduceSum", ["c2", "axis1"], ["r2"], keepdims=1),
        helper.make_node("Mul", ["r2", "inv_r2"], ["rho"]),
    ]

    def horner(prefix: str, coeffs: list[float]) -> str:
        inits.append(const(f"{prefix}{len(coeffs) - 1}", coeffs[-1]))
        acc = f"{prefix}{len(coeffs) - 1}"
        for j in range(len(coeffs) - 2, -1, -1):
            inits.append(const(f"{prefix}{j}", coeffs[j]))
            nodes.append(helper.make_node("Mul", [acc, "rho"], [f"{prefix}m{j}"]))
            nodes.append(helper.make_node("Add", [f"{prefix}m{j}", f"{prefix}{j}"], [f"{prefix}h{j}"]))
            acc = f"{prefix}h{j}"
        return acc

    fv = horner("a", k["vertex_coefficients"])
    fe = horner("b", k["energy_coefficients"])
    nodes += [
        helper.make_node("Mul", ["centroid", fv], ["vertex"]),
        helper.make_node("Mul", ["q", fe], ["qe"]),
        helper.make_node("Mul", ["qe", "inv_ly"], ["energy2d"]),
        helper.make_node("Squeeze", ["energy2d", "axis1"], ["energy"]),
    ]
    graph = helper.make_graph(
        nodes, "juno_bridge_baseline_vertex_energy",
        [helper.make_tensor_value_info("pmt", TensorProto.FLOAT, ["B", 2, N_LPMT])],
        [helper.make_tensor_value_info("vertex", TensorProto.FLOAT, ["B", 3]),
         helper.make_tensor_value_info("energy", TensorProto.FLOAT, ["B"])],
        inits)
    model = helper.make_model(graph, producer_name="juno-bridge", ir_version=IR_VERSION,
                              opset_imports=[helper.make_opsetid("", OPSET)], doc_string=__doc__.split("\n")[0])
    helper.set_model_props(model, {"juno_bridge.revision": k["revision"], "units": "vertex m, energy MeV"})
    onnx.checker.check_model(model)
    path = Path(path)
    with staged(path) as tmp:
        onnx.save(model, tmp)
    return path


def onnx_model() -> Path:
    """The default model as ONNX, built from the shipped coefficients into the cache on first use."""
    from juno_bridge.paths import cache_dir

    path = cache_dir() / f"baseline-{coefficients()['revision']}.onnx"
    return path if path.exists() else build_onnx(path)


def torch_module(coeffs: dict | None = None):
    """The model as a torch.nn.Module (the same arithmetic as ``reconstruct``)."""
    import torch

    k = coeffs or coefficients()

    class BaselineVertexEnergy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("positions", torch.from_numpy(toy_detector().lpmt_pos.astype(np.float32)))
            self.register_buffer("a", torch.tensor(k["vertex_coefficients"], dtype=torch.float32))
            self.register_buffer("b", torch.tensor(k["energy_coefficients"], dtype=torch.float32))
            self.inv_r2 = float(np.float32(1.0 / k["ls_radius_m"] ** 2))
            self.inv_ly = float(np.float32(1.0 / k["light_yield_pe_per_mev"]))

        @staticmethod
        def horner(x, coeffs):
            acc = torch.full_like(x, 0.0) + coeffs[-1]
            for j in range(coeffs.shape[0] - 2, -1, -1):
                acc = acc * x + coeffs[j]
            return acc

        def forward(self, pmt):
            npe = pmt[:, 0, :]
            q = npe.sum(dim=1, keepdim=True)
            centroid = (npe @ self.positions) / torch.clamp(q, min=1e-6)
            rho = (centroid * centroid).sum(dim=1, keepdim=True) * self.inv_r2
            vertex = centroid * self.horner(rho, self.a)
            energy = (q * self.horner(rho, self.b) * self.inv_ly)[:, 0]
            return vertex, energy

    return BaselineVertexEnergy().eval()


def torch_models(cache: Path) -> tuple[Path, Path, object]:
    """The baseline as .pt2 and .pt in ``cache``, and its module (``forms.torch_forms``)."""
    from juno_bridge.demo.models.forms import torch_forms

    return torch_forms(torch_module, f"baseline-{coefficients()['revision']}", cache)


if __name__ == "__main__":  # python -m juno_bridge.demo.models.baseline: retrain and rewrite the coefficients
    COEFFICIENTS.write_text(json.dumps(train(), indent=2) + "\n")
    print(f"wrote {COEFFICIENTS}")
