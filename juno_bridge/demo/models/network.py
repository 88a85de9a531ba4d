"""The default model's network in torch: the detector's geometry fixed inside the graph, the PMT time
response and an event-level head learned from toy events (``juno-bridge train``).

Input ``pmt`` [B, 2, 17612] (channel 0 nPE, channel 1 first-hit time in ns, 0 for a dark PMT) ->
``vertex`` [B, 3] (m), ``energy`` [B] (MeV). The stages, in graph order:

1. **start** (fixed): the baseline's charge centroid with its polynomial, ``v0`` (~23 cm at 1 MeV).
2. **PMT time response** (learned): a fired PMT's first-hit time is the earliest of its n
   photoelectrons, so it comes earlier and spreads less the more there are, by an amount set by the
   PMT's transit-time spread (MCP-PMTs ~4x wider than dynode PMTs). Two learned tables, indexed by PMT
   type and nPE (1..N_PE, the last shared by more), give each fired PMT a time offset and a weight.
3. **time-of-flight fit** (fixed): one Gauss-Newton step, from ``v0``, of the weighted least-squares fit
   ``t_i - offset_i = t0 + |r_i - v| / c_LS`` over the fired PMTs; the 3x3 normal equations are solved
   in closed form inside the graph -> ``v1``.
4. **expected light** (fixed): the toy detector's acceptance and attenuation summed over every PMT at
   ``v1`` (tabulated in radius: the detector is a sphere); ``E1 = Q / (light yield x expected light)``.
5. **head** (learned): an MLP on rotation invariants of the event (radius, energy, charge, hit
   multiplicity, step length) returns a radial shift and an energy scale:
   ``vertex = v1 + dr v1/|v1|``, ``energy = E1 (1 + de)``. A sphere of PMTs has no preferred direction,
   so the head sees only invariants and its corrections are equivariant by construction.

Every op is a matmul against the fixed PMT positions, elementwise, a row sum or a table lookup, so the
same graph exports to ONNX, AOTInductor, TorchScript and Keras without custom ops; it is written once
(``fixed_graph`` and friends) against a small array API that torch (``TorchOps``) and keras.ops
(``keras_port.KerasOps``) both provide.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from juno_bridge.demo.models.graph import (
    HEAD_FEATURES,
    HIDDEN,
    N_PE,
    apply_head,
    fixed_graph,
    geometry,
    head_features,
    naive_time_response,
    radial_light,
)
from juno_bridge.demo.toymc import SCINTILLATION_TAU_NS


class VertexEnergyNet(nn.Module):
    """The default model (module docstring). ``weights``: the arrays of ``default_weights.npz``."""

    def __init__(self, weights: dict[str, np.ndarray] | None = None, use_head: bool = True):
        super().__init__()
        geo = geometry()
        for name in ("positions", "positions_t", "type_base", "light_table"):
            self.register_buffer(name, torch.tensor(geo[name]))   # a copy: the module owns its buffers
        self.pmt_radius, self.light_norm, self.light_step = geo["pmt_radius"], geo["light_norm"], geo["light_step"]
        self.start, self.inv_r2 = geo["start"], geo["inv_r2"]
        offset, log_weight = naive_time_response()
        self.time_offset = nn.Parameter(torch.from_numpy(offset))
        self.log_weight = nn.Parameter(torch.from_numpy(log_weight))
        self.head = nn.Sequential(nn.Linear(len(HEAD_FEATURES), HIDDEN), nn.SiLU(), nn.Linear(HIDDEN, HIDDEN),
                                  nn.SiLU(), nn.Linear(HIDDEN, 2))
        self.register_buffer("feature_mean", torch.zeros(len(HEAD_FEATURES)))
        self.register_buffer("feature_std", torch.ones(len(HEAD_FEATURES)))
        self.use_head = use_head
        if weights is not None:
            self.load_arrays(weights)

    # -- weights as plain arrays (what ships: default_weights.npz; also what Keras is given) ------------
    def arrays(self) -> dict[str, np.ndarray]:
        out = {"time_offset": self.time_offset, "log_weight": self.log_weight,
               "feature_mean": self.feature_mean, "feature_std": self.feature_std}
        for i, layer in enumerate(m for m in self.head if isinstance(m, nn.Linear)):
            out[f"head{i}.weight"], out[f"head{i}.bias"] = layer.weight, layer.bias
        return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in out.items()}

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        with torch.no_grad():
            for name in ("time_offset", "log_weight", "feature_mean", "feature_std"):
                getattr(self, name).copy_(torch.from_numpy(np.asarray(arrays[name], np.float32)))
            for i, layer in enumerate(m for m in self.head if isinstance(m, nn.Linear)):
                layer.weight.copy_(torch.from_numpy(np.asarray(arrays[f"head{i}.weight"], np.float32)))
                layer.bias.copy_(torch.from_numpy(np.asarray(arrays[f"head{i}.bias"], np.float32)))

    def fit(self, pmt):
        """Stages 1-4: v0, v1, E1, the total charge and the fired PMTs."""
        return fixed_graph(TorchOps, pmt, self, self.time_offset, self.log_weight)

    def expected_light(self, v):
        """Stage 4 as the graph computes it (interpolated in radius)."""
        return radial_light(TorchOps, v, self)


    def forward(self, pmt):
        v0, v1, energy1, charge, hits = self.fit(pmt)
        if not self.use_head:
            return v1, energy1
        features = head_features(TorchOps, v0, v1, energy1, charge, hits)
        return apply_head(TorchOps, v1, energy1, self.head((features - self.feature_mean) / self.feature_std))


class TorchOps:
    """What the graph needs of an array library, in torch (graph.py's functions take it as ``o``)."""
    matmul, sqrt, floor = staticmethod(torch.matmul), staticmethod(torch.sqrt), staticmethod(torch.floor)
    exp, log, sum = staticmethod(torch.exp), staticmethod(torch.log), staticmethod(torch.sum)
    maximum, minimum = staticmethod(torch.clamp_min), staticmethod(torch.clamp_max)   # against a number
    stack, concat, reshape = staticmethod(torch.stack), staticmethod(torch.cat), staticmethod(torch.reshape)

    @staticmethod
    def to_index(x):
        return x.long()

    @staticmethod
    def fired(npe):
        return (npe > 0).to(npe.dtype)

    @staticmethod
    def transpose(x):
        """[B, R, N] -> [B, N, R]"""
        return x.transpose(1, 2)

    @staticmethod
    def table_index(npe, type_base):
        """The entry of every PMT in graph.response_tables: type * (N_PE + 1) + min(round(nPE), N_PE)."""
        return torch.clamp(torch.round(npe), 0.0, float(N_PE)).long() + type_base

    @staticmethod
    def take(table, index):
        return table.reshape(-1)[index]

    @staticmethod
    def take_columns(table, index):
        """[R, T] table, index of any shape -> [R, *index.shape]"""
        return table[:, index]


def first_hit_response(sigma_ns: float, tau_ns: float = SCINTILLATION_TAU_NS, n_max: int = N_PE):
    """Mean and variance of the earliest of n hit times, each Exp(tau) (scintillation) + N(0, sigma^2)
    (transit-time spread), for n = 1..n_max: the ideal the learned tables are compared with (tests)."""
    x = torch.linspace(-8 * sigma_ns, 12 * tau_ns + 8 * sigma_ns, 20001, dtype=torch.float64)
    dx = float(x[1] - x[0])
    # the exponentially modified Gaussian's CDF
    tail = torch.log(torch.special.ndtr(x / sigma_ns - sigma_ns / tau_ns).clamp(min=1e-300))
    cdf = torch.special.ndtr(x / sigma_ns) - torch.exp(-x / tau_ns + sigma_ns**2 / (2 * tau_ns**2) + tail)
    survival = (1 - cdf).clamp(0, 1)[None, :] ** torch.arange(1, n_max + 1, dtype=torch.float64)[:, None]
    positive = x >= 0
    mean = (survival * positive).sum(1) * dx - ((1 - survival) * ~positive).sum(1) * dx
    second = (2 * x * survival * positive).sum(1) * dx + (2 * -x * (1 - survival) * ~positive).sum(1) * dx
    return mean.numpy(), (second - mean * mean).numpy()
