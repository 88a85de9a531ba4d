"""A toy event generator for the toy detector: point-like events in the liquid scintillator, seen as
sparse LPMT hits the way the offline event model gives them (one hit per photoelectron: PMT id, nPE,
hit time; several hits per PMT).

Physics, all toy-level (the parameters marked approx. in detector.py are toy values, not measurements):
expected nPE of a PMT ~ light yield x energy x solid angle (area x cos(incidence) / d^2) x
exp(-d / attenuation length), normalised so an event at the centre yields LIGHT_YIELD PE/MeV, and
Poisson-sampled per PMT. Hit time = time of flight (d / (c/n)) + scintillation decay +
the PMT's transit-time spread.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from juno_bridge.demo.detector import LS_RADIUS_M, N_LPMT, Detector, toy_detector

LIGHT_YIELD_PE_PER_MEV = 1345.0  # at the detector centre
ATTENUATION_LENGTH_M = 20.0      # approx., toy
LIGHT_SPEED_M_PER_NS = 0.2       # c / n with n about 1.5
SCINTILLATION_TAU_NS = 4.4       # one decay component, approx., toy
CHUNK_EVENTS = 128               # events generated together: bounds memory at ~40 MB per chunk


def _poisson(rng: np.random.Generator, mean: np.ndarray) -> np.ndarray:
    """Poisson samples for an array of mostly small means, ~4x faster than Generator.poisson here:
    inverse-transform sampling, the few means above 8 by Generator.poisson."""
    flat = mean.ravel()
    counts = np.zeros(flat.shape, np.int32)
    large = np.flatnonzero(flat > 8.0)
    counts[large] = rng.poisson(flat[large])
    u = rng.random(flat.shape, dtype=np.float32)
    u[large] = 0.0  # already sampled
    term = np.exp(-flat)       # P(k = 0)
    cdf = term.copy()
    active = np.flatnonzero(u > cdf)
    k = 0
    while active.size and k < 60:  # P(k > 60 | mean <= 8) is far below float32 resolution
        k += 1
        counts[active] = k
        term_a = term[active] * flat[active] / k
        term[active] = term_a
        cdf[active] += term_a
        active = active[u[active] > cdf[active]]
    return counts.reshape(mean.shape)


@dataclass
class Events:
    """N events with sparse LPMT hits in CSR layout: event i's hits are [offsets[i], offsets[i+1])."""
    vertex: np.ndarray   # [N, 3] float32, metres
    energy: np.ndarray   # [N] float32, MeV
    offsets: np.ndarray  # [N + 1] int64
    pmt_id: np.ndarray   # [H] int32, 0..17611
    npe: np.ndarray      # [H] float32 (1 per photoelectron)
    time: np.ndarray     # [H] float32, ns after the event

    def __len__(self) -> int:
        return len(self.energy)

    def hits(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Event i's hits as views (no copy): pmt_id, npe, time."""
        s = slice(self.offsets[i], self.offsets[i + 1])
        return self.pmt_id[s], self.npe[s], self.time[s]

    @classmethod
    def concatenate(cls, parts: list["Events"]) -> "Events":
        offsets = [np.zeros(1, np.int64)]
        base = 0
        for p in parts:
            offsets.append(p.offsets[1:] + base)
            base += int(p.offsets[-1])
        return cls(np.concatenate([p.vertex for p in parts]), np.concatenate([p.energy for p in parts]),
                   np.concatenate(offsets), np.concatenate([p.pmt_id for p in parts]),
                   np.concatenate([p.npe for p in parts]), np.concatenate([p.time for p in parts]))

    def dense(self, start: int = 0, stop: int | None = None, out: np.ndarray | None = None,
              empty: float = 0.0) -> np.ndarray:
        """Events [start, stop) as a dense [n, 2, 17612] float32 batch (nPE summed, first-hit time the
        minimum, ``empty`` for dark PMTs) through the core's scatter; ``out`` is filled in place."""
        import juno_bridge as jb

        stop = len(self) if stop is None else stop
        if out is None:
            out = np.empty((stop - start, 2, N_LPMT), np.float32)
        if out.shape != (stop - start, 2, N_LPMT):
            raise ValueError(f"out must have shape {(stop - start, 2, N_LPMT)}, got {out.shape}")
        for k, i in enumerate(range(start, stop)):
            jb.scatter_hits(*self.hits(i), out=out[k], empty=empty)
        return out

    def save(self, path) -> None:
        """Writes the events as a sparse-hits HDF5 file, truth included (layout: juno_bridge.hits_file)."""
        from juno_bridge import hits_file

        hits_file.write(path, self.offsets, self.pmt_id, self.npe, self.time, self.vertex, self.energy)

    def truth(self) -> np.ndarray:
        """[N, 4] float32: vertex x, y, z (m) and energy (MeV), the default model's output layout."""
        return np.concatenate([self.vertex, self.energy[:, None]], axis=1).astype(np.float32)


def generate(n_events: int, seed: int = 0, energy_mev: tuple[float, float] = (0.0, 10.0),
             detector: Detector | None = None, vertex: np.ndarray | None = None,
             energy: np.ndarray | None = None) -> Events:
    """Generates ``n_events`` events, reproducible by ``seed``. ``vertex`` [N, 3] and ``energy`` [N]
    may be given to place events; otherwise vertices are uniform in the LS sphere and energies
    uniform in ``energy_mev``."""
    return Events.concatenate(list(generate_chunks(n_events, seed, energy_mev, detector, vertex, energy)))


def generate_chunks(n_events: int, seed: int = 0, energy_mev: tuple[float, float] = (0.0, 10.0),
                    detector: Detector | None = None, vertex: np.ndarray | None = None,
                    energy: np.ndarray | None = None) -> Iterator[Events]:
    """The events ``generate`` makes from the same arguments, CHUNK_EVENTS at a time (at least one chunk),
    so a writer holds one chunk's hits, not all of them."""
    det = detector or toy_detector()
    rng = np.random.default_rng(seed)
    if vertex is None:
        direction = rng.standard_normal((n_events, 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        vertex = direction * (LS_RADIUS_M * rng.random(n_events) ** (1 / 3))[:, None]
    if energy is None:
        energy = rng.uniform(*energy_mev, size=n_events)
    vertex = np.asarray(vertex, dtype=np.float64).reshape(n_events, 3)
    energy = np.asarray(energy, dtype=np.float64).reshape(n_events)
    if np.any(energy < 0):
        raise ValueError("energies must be >= 0 MeV")

    pos = det.lpmt_pos
    radius = float(np.linalg.norm(pos[0]))
    normal = (pos / radius).astype(np.float32)
    tts = det.lpmt_tts_ns.astype(np.float32)
    # Normalisation: the summed weight of an event at the centre.
    centre_weight = len(pos) * np.exp(-radius / ATTENUATION_LENGTH_M) / radius**2

    for start in range(0, n_events, CHUNK_EVENTS) or range(1):
        v = vertex[start:start + CHUNK_EVENTS].astype(np.float32)
        n = len(v)
        # PMTs sit on a sphere (pos = R * normal), so distance and incidence need only v . normal.
        along = v @ normal.T                                                # [n, K]
        dist = np.sqrt(radius**2 + (v * v).sum(axis=1)[:, None] - 2 * radius * along)
        cos_incidence = (radius - along) / dist
        expected = np.clip(cos_incidence, 0, None) / dist**2 * np.exp(-dist / ATTENUATION_LENGTH_M)
        expected *= (LIGHT_YIELD_PE_PER_MEV / centre_weight * energy[start:start + n]).astype(np.float32)[:, None]
        n_pe = _poisson(rng, expected)                                      # independent per PMT
        event, pmt = np.nonzero(n_pe)
        per_pmt = n_pe[event, pmt]
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum(np.bincount(event, weights=per_pmt, minlength=n).astype(np.int64), out=offsets[1:])
        # One hit per photoelectron, as simulated events list them.
        pmt = np.repeat(pmt, per_pmt)
        flight = np.repeat(dist[event, np.nonzero(n_pe)[1]], per_pmt) / LIGHT_SPEED_M_PER_NS
        t = (flight + rng.exponential(SCINTILLATION_TAU_NS, len(pmt)).astype(np.float32)
             + tts[pmt] * rng.standard_normal(len(pmt), dtype=np.float32))
        yield Events(v, energy[start:start + n].astype(np.float32), offsets, pmt.astype(np.int32),
                     np.ones(len(pmt), np.float32), t.astype(np.float32))
