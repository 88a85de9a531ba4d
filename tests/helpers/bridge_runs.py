"""Runs a juno-bridge Session both ways a caller can: outputs allocated by the runtime, and outputs written
into caller buffers (out=). Both must agree bitwise, and out= must hand back the caller's own arrays."""
from __future__ import annotations

import numpy as np

import juno_bridge as jb
from .reference import assert_results_equal, sentinel_like


def run_both_ways(session: jb.Session, feeds, expected: dict | None = None) -> dict:
    """The runtime-allocated result, after checking that an out= run gives the same bits in place.

    Output shapes for out= come from `expected` (the reference result) or from the allocated run.
    """
    allocated = session.run(feeds)
    shapes = expected if expected is not None else allocated
    buffers = {name: sentinel_like(np.asarray(shapes[name])) for name in allocated}
    in_place = session.run(feeds, out=buffers)
    assert list(in_place) == list(allocated)
    for name, buf in buffers.items():
        assert in_place[name] is buf, f"out= result for {name!r} is not the caller's array"
    assert_results_equal(in_place, allocated)
    return allocated
