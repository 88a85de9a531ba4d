"""A toy JUNO central detector: PMT positions and types for the toy generator and the default model.

THIS IS A TOY, NOT JUNO'S SURVEY: the PMTs are spread evenly on spheres (a Fibonacci lattice), with
JUNO's published PMT counts and approximate radii (the constants below); real positions come from the
detector's geometry service. The figures marked approx. are toy parameters, not measurements.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from juno_bridge._hits import NUM_LPMT as N_LPMT  # 20-inch PMTs of the central detector (jb::kLargePmts)
from juno_bridge._hits import NUM_SPMT as N_SPMT  # 3-inch PMTs (jb::kSmallPmts)

LS_RADIUS_M = 17.7           # liquid-scintillator sphere (35.4 m inner diameter of the acrylic)
LPMT_RADIUS_M = 19.434       # LPMT photocathode sphere, approx.
SPMT_RADIUS_M = 19.40        # SPMTs sit in the same lattice, approx.
MCP_FRACTION = 0.75          # about 15,000 MCP-PMTs (NNVT) and 5,000 dynode PMTs (Hamamatsu)
TTS_SIGMA_NS = {"mcp": 5.1, "dynode": 1.3}  # transit-time spread (sigma), approx.; MCP wider
MCP, DYNODE = 0, 1


def fibonacci_sphere(n: int, radius: float) -> np.ndarray:
    """n points spread evenly on a sphere: [n, 3] float64 in metres."""
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    phi = np.pi * (3.0 - np.sqrt(5.0)) * i  # golden angle
    r = np.sqrt(1.0 - z * z)
    return radius * np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


@dataclass(frozen=True)
class Detector:
    lpmt_pos: np.ndarray   # [17612, 3] float64, metres
    spmt_pos: np.ndarray   # [25600, 3] float64, metres
    lpmt_type: np.ndarray  # [17612] int8: MCP (0) or DYNODE (1)

    @property
    def lpmt_tts_ns(self) -> np.ndarray:
        """Transit-time spread (sigma, ns) of each LPMT, from its type."""
        return np.where(self.lpmt_type == MCP, TTS_SIGMA_NS["mcp"], TTS_SIGMA_NS["dynode"])


@lru_cache(maxsize=1)
def toy_detector(seed: int = 20240826) -> Detector:
    """The toy detector (cached; the same seed gives the same PMT types everywhere)."""
    rng = np.random.default_rng(seed)
    lpmt_type = np.where(rng.random(N_LPMT) < MCP_FRACTION, MCP, DYNODE).astype(np.int8)
    det = Detector(fibonacci_sphere(N_LPMT, LPMT_RADIUS_M), fibonacci_sphere(N_SPMT, SPMT_RADIUS_M), lpmt_type)
    for array in (det.lpmt_pos, det.spmt_pos, det.lpmt_type):
        array.setflags(write=False)  # shared, cached: nobody may change it under another user
    return det
