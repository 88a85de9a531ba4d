"""The default model's graph, written once against a small array API that torch (network.TorchOps),
keras.ops (keras_port.KerasOps) and, for expected_light, numpy (NumpyOps) each provide, so that every
form of the model runs the same arithmetic in the same order. What the stages are and why: ``network``.
``g``, wherever it appears, holds the constants of ``geometry()`` as the framework's tensors.
"""
from __future__ import annotations

from functools import lru_cache
from types import SimpleNamespace

import numpy as np

from juno_bridge.demo.detector import LS_RADIUS_M, N_LPMT, toy_detector
from juno_bridge.demo.models import baseline
from juno_bridge.demo.toymc import (
    ATTENUATION_LENGTH_M,
    LIGHT_SPEED_M_PER_NS,
    LIGHT_YIELD_PE_PER_MEV,
    SCINTILLATION_TAU_NS,
)

N_PE = 64            # nPE bins of the time-response tables: 1, 2, ..., 64 and more
N_TYPES = 2          # PMT types: MCP (0), dynode (1), as toy_detector().lpmt_type
HEAD_FEATURES = ("radius_fit", "energy_fit", "log_charge", "hits_per_pe", "radius_start", "step_m",
                 "cos_start_fit")
HIDDEN = 64
LIGHT_TABLE_BINS = 512      # the expected light tabulated in radius, 0 .. LIGHT_TABLE_MAX_M
LIGHT_TABLE_MAX_M = 19.0
MAX_STEP_M = 3.0            # the time-of-flight step's trust region
FULL_FIT_HITS = 10.0        # fired PMTs from which the step is taken whole
VERTEX_SHIFT_M = 0.1   # the head's outputs are scaled so that ~1 means a 10 cm shift ...
ENERGY_SCALE = 0.01    # ... and a 1 % energy correction


def naive_time_response() -> tuple[np.ndarray, np.ndarray]:
    """The tables before training: the scintillation decay alone (the earliest of n photoelectrons comes
    tau/n after the flash on average) and the same weight for every fired PMT, as if the PMTs had no
    transit-time spread. ``fixed layers alone`` in the ablation uses these."""
    n = np.arange(1, N_PE + 1, dtype=np.float32)
    offset = np.tile(SCINTILLATION_TAU_NS / n, (N_TYPES, 1)).astype(np.float32)
    return offset, np.zeros((N_TYPES, N_PE), np.float32)


def geometry() -> dict:
    """The fixed constants of the graph, from the toy detector and the shipped baseline."""
    det = toy_detector()
    pos = det.lpmt_pos.astype(np.float32)
    radius = float(np.linalg.norm(det.lpmt_pos[0]))
    centre_weight = N_LPMT * np.exp(-radius / ATTENUATION_LENGTH_M) / radius**2
    k = baseline.coefficients()
    return {"positions": pos, "positions_t": np.ascontiguousarray(pos.T),
            # the row of a PMT's time-response tables: type * (N_PE + 1) + nPE bin (bin 0: dark, weight 0)
            "type_base": det.lpmt_type.astype(np.int64) * (N_PE + 1),
            "light_table": light_table(), "light_step": LIGHT_TABLE_MAX_M / LIGHT_TABLE_BINS,
            "pmt_radius": float(np.float32(radius)),
            # normalises the expected light so that an event at the centre expects LIGHT_YIELD per MeV
            "light_norm": float(np.float32(LIGHT_YIELD_PE_PER_MEV / centre_weight)),
            # the start: the baseline's centroid polynomial (its shipped coefficients, as float32)
            "start": [float(np.float32(a)) for a in k["vertex_coefficients"]],
            "inv_r2": float(np.float32(1.0 / k["ls_radius_m"] ** 2))}


@lru_cache(maxsize=1)
def light_table() -> np.ndarray:
    """The light expected from a vertex at radius r_k = k * LIGHT_TABLE_MAX_M / LIGHT_TABLE_BINS, k = 0 ..
    LIGHT_TABLE_BINS, summed exactly over the PMTs (float64). The detector is a sphere: the sum depends on
    the direction by at most 1.2e-5 of itself (toy lattice, r = 17.7 m), and linear interpolation
    between these radii is good to ~1e-5, so the graph looks it up instead of summing 17,612 terms."""
    det = toy_detector()
    g = SimpleNamespace(positions_t=det.lpmt_pos.T, pmt_radius=float(np.linalg.norm(det.lpmt_pos[0])))
    radii = np.arange(LIGHT_TABLE_BINS + 1) * (LIGHT_TABLE_MAX_M / LIGHT_TABLE_BINS)
    direction = np.array([1.0, 2.0, 3.0]) / np.sqrt(14.0)
    table = expected_light(NumpyOps, radii[:, None] * direction[None, :], g).astype(np.float32)
    table.setflags(write=False)
    return table


class NumpyOps:
    """What expected_light needs of an array library, in numpy (the energy floor, the light table)."""
    matmul, sqrt, exp = np.matmul, np.sqrt, np.exp

    @staticmethod
    def sum(x, axis, keepdims=False):
        return x.sum(axis=axis, keepdims=keepdims)

    @staticmethod
    def maximum(x, floor: float):
        return np.maximum(x, np.float32(floor))


def start_vertex(o, npe, g):
    """Stage 1: the baseline's vertex, the charge centroid stretched by its polynomial in rho."""
    q = o.sum(npe, 1, keepdims=True)
    centroid = o.matmul(npe, g.positions) / o.maximum(q, 1e-6)
    rho = o.sum(centroid * centroid, 1, keepdims=True) * g.inv_r2
    acc = rho * 0.0 + g.start[-1]
    for a in reversed(g.start[:-1]):
        acc = acc * rho + a
    return centroid * acc


def distances(o, v, g):
    """|r_i - v| for every PMT (PMTs on a sphere: |r|^2 = R^2), and v . r_i: [B, N] each."""
    along = o.matmul(v, g.positions_t)
    d2 = g.pmt_radius**2 + o.sum(v * v, 1, keepdims=True) - 2.0 * along
    return o.sqrt(o.maximum(d2, 1e-4)), along


def expected_light(o, v, g):
    """The light expected at vertex v: sum over PMTs of acceptance (cos of incidence / d^2) x
    attenuation: [B]. Tabulated in radius for the graph (light_table, radial_light)."""
    d, along = distances(o, v, g)
    cos_incidence = (g.pmt_radius - along / g.pmt_radius) / d
    return o.sum(o.maximum(cos_incidence, 0.0) / (d * d) * o.exp(-d / ATTENUATION_LENGTH_M), 1)


def radial_light(o, v, g):
    """Stage 4: the expected light at vertex v, interpolated in |v| from light_table(): [B]."""
    r = o.sqrt(o.sum(v * v, 1))
    x = o.minimum(r, LIGHT_TABLE_MAX_M - 1e-3) * (1.0 / g.light_step)
    below = o.floor(x)
    index = o.to_index(below)
    low = o.take(g.light_table, index)
    return low + (o.take(g.light_table, index + 1) - low) * (x - below)


def response_tables(o, time_offset, log_weight):
    """The learned tables as the graph reads them: [2, N_TYPES * (N_PE + 1)], row 0 the time offsets,
    row 1 the square roots of the weights (the fit's sums are a Gram matrix of rows scaled by them); per
    type, entry 0 for a dark PMT (weight 0, so it drops out of every sum), then nPE 1 .. N_PE. One
    table, so one lookup gives a PMT both (the lookup is the graph's costliest op)."""
    dark = time_offset[:, :1] * 0.0
    offsets = o.reshape(o.concat([dark, time_offset], 1), (1, -1))
    root_weights = o.reshape(o.concat([dark, o.exp(0.5 * log_weight)], 1), (1, -1))
    return o.concat([offsets, root_weights], 0)


def solve_sym3(o, a: list, b: list):
    """x = A^-1 b for a batch of symmetric 3x3 A given as (xx, yy, zz, xy, xz, yz), by the adjugate."""
    xx, yy, zz, xy, xz, yz = a
    c00, c01, c02 = yy * zz - yz * yz, xz * yz - xy * zz, xy * yz - xz * yy
    c11, c12, c22 = xx * zz - xz * xz, xy * xz - xx * yz, xx * yy - xy * xy
    det = xx * c00 + xy * c01 + xz * c02
    return o.stack([(c00 * b[0] + c01 * b[1] + c02 * b[2]) / det, (c01 * b[0] + c11 * b[1] + c12 * b[2]) / det,
                    (c02 * b[0] + c12 * b[1] + c22 * b[2]) / det], 1)


def gauss_newton_step(o, v0, sums: dict):
    """Stage 3's step from ``v0`` given the fit's plain weighted sums over PMTs (training keeps these per
    table entry, in float64): w, w res, w g, w g res and w g g^T (6 unique), g_i = d(|r_i - v|/c)/dv,
    and the number of fired PMTs.
    Eliminating t0 centres them: A = S_gg - S_g S_g^T / S_w, b = S_gr - S_g S_r / S_w. Returns v1."""
    wsum, sr, sg, sgr, sgg = sums["w"], sums["r"], sums["g"], sums["gr"], sums["gg"]
    wsum = o.maximum(wsum, 1e-12)   # no fired PMT: every sum is 0, and so is the step
    pairs = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))
    a = [sgg[n] - sg[:, i] * sg[:, j] / wsum for n, (i, j) in enumerate(pairs)]
    # A whisper of damping (1e-6 of the trace, ~1e-3 of one photoelectron's term) keeps A invertible
    # for events of a handful of hits; it moves a normal event's step by ~1e-6 of itself.
    damping = (a[0] + a[1] + a[2]) * 1e-6 + 1e-6
    a = [a[0] + damping, a[1] + damping, a[2] + damping, *a[3:]]
    b = [sgr[:, k] - sg[:, k] * sr / wsum for k in range(3)]
    step = solve_sym3(o, a, b)
    # a trust region: a step longer than MAX_STEP_M (a fit of a few hits, nothing a real event needs:
    # the start is within a metre) is shortened to it, so the vertex stays near the detector
    length = o.sqrt(o.sum(step * step, 1, keepdims=True) + 1e-12)
    # t0 and three coordinates need 4 fired PMTs: below, the start stands; the step is trusted fully
    # from FULL_FIT_HITS on (every event above ~0.05 MeV), in between in proportion
    trust = o.minimum(o.maximum((sums["hits"] - 4.0) * (1.0 / (FULL_FIT_HITS - 4.0)), 0.0), 1.0)
    return v0 + step * o.minimum(MAX_STEP_M / length, 1.0) * trust[:, None]


def fixed_graph(o, pmt, g, time_offset, log_weight):
    """Stages 1-4 on a dense batch: v0, v1, E1, the total charge and the fired PMTs."""
    npe, time = pmt[:, 0, :], pmt[:, 1, :]
    v0 = start_vertex(o, npe, g)
    response = o.take_columns(response_tables(o, time_offset, log_weight), o.table_index(npe, g.type_base))
    offset, sw = response[0], response[1]            # [B, N] each; sw = sqrt(weight), 0 for a dark PMT
    # v0 - r_i per PMT, component by component: [B, N] each. Explicit differences, not |r|^2 - 2 v.r +
    # |v|^2 expanded into matmuls: the near PMTs weigh most and that expansion cancels ~2 digits there.
    diff = [v0[:, k:k + 1] - g.positions_t[k:k + 1, :] for k in range(3)]
    d = o.sqrt(diff[0] * diff[0] + diff[1] * diff[1] + diff[2] * diff[2] + 1e-8)
    res = time - offset - d * (1.0 / LIGHT_SPEED_M_PER_NS)
    scaled = (sw / d) * (1.0 / LIGHT_SPEED_M_PER_NS)
    # Every weighted sum of the fit at once: the Gram matrix of sqrt(w) (1, g_x, g_y, g_z, res), one
    # batched matmul [B, 5, N] x [B, N, 5]; g_i = d(|r_i - v|/c)/dv = (v - r_i) / (c d_i) at v0.
    rows = o.stack([sw, diff[0] * scaled, diff[1] * scaled, diff[2] * scaled, res * sw], 1)
    m = o.matmul(rows, o.transpose(rows))
    sums = {"w": m[:, 0, 0], "r": m[:, 0, 4], "g": m[:, 0, 1:4], "gr": m[:, 1:4, 4],
            "gg": [m[:, 1, 1], m[:, 2, 2], m[:, 3, 3], m[:, 1, 2], m[:, 1, 3], m[:, 2, 3]],
            "hits": o.sum(o.fired(npe), 1)}
    v1 = gauss_newton_step(o, v0, sums)
    charge = o.sum(npe, 1)
    return v0, v1, charge / (g.light_norm * radial_light(o, v1, g)), charge, sums["hits"]


def head_features(o, v0, v1, energy1, charge, hits):
    """The head's inputs, rotation invariants of the event: [B, len(HEAD_FEATURES)]."""
    r1 = o.sqrt(o.sum(v1 * v1, 1) + 1e-6)
    r0 = o.sqrt(o.sum(v0 * v0, 1) + 1e-6)
    step = v1 - v0
    return o.stack([r1 / LS_RADIUS_M, energy1 / 10.0, o.log(o.maximum(charge, 1.0) / LIGHT_YIELD_PE_PER_MEV),
                    hits / o.maximum(charge, 1.0), r0 / LS_RADIUS_M, o.sqrt(o.sum(step * step, 1) + 1e-6),
                    o.sum(v0 * v1, 1) / (r0 * r1)], 1)


def apply_head(o, v1, energy1, out):
    """Stage 5's outputs applied: a radial shift of v1 and a relative energy correction."""
    r1 = o.sqrt(o.sum(v1 * v1, 1, keepdims=True) + 1e-6)
    return v1 + (VERTEX_SHIFT_M * out[:, 0:1]) * v1 / r1, energy1 * (1.0 + ENERGY_SCALE * out[:, 1])
