"""No memory growth over many runs and over many sessions opened and closed (resident set size, with a
tolerance for the allocator's own caching). Outputs are large enough that one leaked output per call,
or one leaked model per session, would exceed the tolerance several times over."""
from __future__ import annotations

import gc
import os

import numpy as np
import pytest

import juno_bridge as jb
from helpers import onnx_models

PAGE = os.sysconf("SC_PAGE_SIZE")
MiB = 1 << 20


def rss() -> int:
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


@pytest.fixture(scope="module")
def big_add(model_path):
    return model_path("add_f32_for_memory", onnx_models.add, np.float32)


@pytest.mark.parametrize("in_place", [False, True], ids=["allocated", "out="])
def test_twenty_thousand_runs_do_not_grow_memory(big_add, in_place):
    s = jb.Session(big_add, intra_op_threads=1)
    a = np.ones((4, 256), np.float32)  # 4 KiB per output: 20k leaked outputs would be 80 MiB
    out = {"c": np.empty_like(a)} if in_place else None
    for _ in range(2000):  # warm-up: arenas and caches reach their steady size
        s.run({"a": a, "b": a}, out=out)
    before = rss()
    for _ in range(20000):
        r = s.run({"a": a, "b": a}, out=out)
    grown = rss() - before
    assert r["c"][0, 0] == 2
    assert grown < 8 * MiB, f"RSS grew by {grown / MiB:.1f} MiB over 20000 runs"


def test_three_hundred_sessions_opened_and_closed_do_not_grow_memory(model_path):
    # Weights of 1 MiB per model: 300 leaked sessions would hold 300 MiB.
    path = model_path("dense_1mib", onnx_models.dense, 1024, 256, 4)
    data = path.read_bytes()
    x = np.ones((8, 1024), np.float32)

    def cycle(i):
        s = jb.Session(path if i % 2 else data, intra_op_threads=1)
        y = s.run({"x": x})["y"]  # a runtime-allocated output, dropped with the session
        s.run({"x": x}, out={"y": np.empty_like(y)})
        if i % 3:
            s.close()  # the others are released by garbage collection

    for i in range(30):
        cycle(i)
    before = rss()
    for i in range(300):
        cycle(i)
    grown = rss() - before
    assert grown < 24 * MiB, f"RSS grew by {grown / MiB:.1f} MiB over 300 sessions"
