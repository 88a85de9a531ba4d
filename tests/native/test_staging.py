"""Option staging="pinned": pageable host arrays reach a session that copies its inputs to a GPU through
pinned blocks of the Session's own. On the CPU it runs against the echo plugin that hands pinned-labelled
memory of its own (optechopin, conftest.py): the staging is the core's, whatever the backend, so what the
plugin is handed, where it read x and which blocks it released tell everything a GPU session would do
with them, short of the GPU's copy."""
import concurrent.futures
import gc
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import juno_bridge as jb

SPLIT_FROM = 4 << 20  # staging.cpp: a copy this large is split over threads


def handed(log) -> list:
    """The devices of the views the plugin was handed, run by run ("x cuda_pinned, y cpu")."""
    return [r.getMessage() for r in log.records if r.getMessage().startswith("x ")]


def released(log) -> list:
    return [r.getMessage() for r in log.records if r.getMessage().startswith("released")]


def read_x_at(session) -> int:
    return session._stats()["input_addresses"][0]


@pytest.fixture
def staged(echo_log):
    s = jb.Session("anything", backend="optechopin", staging="pinned")
    echo_log.clear()  # the probe at open: one byte, released at once
    yield s
    s.close()


@given(n=st.one_of(st.integers(0, 4096), st.sampled_from([SPLIT_FROM // 4 - 1, SPLIT_FROM // 4 + 17,
                                                          3 * SPLIT_FROM // 4 + 5])))
def test_pageable_inputs_and_out_buffers_go_through_the_sessions_pinned_blocks(staged, echo_log, n):
    """Every size, across the one where the copy is split over threads (and not a multiple of its parts):
    the plugin reads x from a pinned block, not the caller's memory, writes y in another, and the caller's
    y gets the result; the caller's x is untouched; the stats count exactly what was copied."""
    echo_log.clear()
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n).astype(np.float32)
    x[0:1] = abs(x[0:1])  # a negative x[0] is the echo plugin's input error
    kept = x.copy()
    y = np.full(n, np.nan, np.float32)
    before = staged._stats()
    staged.run({"x": x}, out={"y": y})
    after = staged._stats()
    np.testing.assert_array_equal(y, 2 * kept)
    np.testing.assert_array_equal(x, kept)
    if n == 0:  # nothing to copy: handed as it came
        assert handed(echo_log) == ["x cpu, y cpu"] and after["bytes_staged"] == before["bytes_staged"]
        return
    assert handed(echo_log) == ["x cuda_pinned, y cuda_pinned"]
    assert read_x_at(staged) != x.ctypes.data and read_x_at(staged) % 64 == 0
    assert after["inputs_staged"] - before["inputs_staged"] == 1
    assert after["bytes_staged"] - before["bytes_staged"] == 2 * x.nbytes  # x in, y back


def test_a_framework_loop_reuses_one_block_per_tensor_and_close_frees_them(echo_log):
    """The per-event loop reads from the same block every event (no allocation after the first run); a
    larger batch takes a larger block, a smaller one reuses a block large enough; the blocks are the
    plugin's own memory, released when the session closes, not before."""
    s = jb.Session("anything", backend="optechopin", staging="pinned")
    echo_log.clear()
    y = np.empty(64, np.float32)
    addresses = set()
    for event in range(5):
        x = np.full(64, event, np.float32)  # a new array each event, as a reader makes it
        s.run({"x": x}, out={"y": y})
        np.testing.assert_array_equal(y, 2 * x)
        addresses.add(read_x_at(s))
    assert len(addresses) == 1 and not released(echo_log)
    big = np.ones(1000, np.float32)
    s.run({"x": big}, out={"y": np.empty(1000, np.float32)})
    assert read_x_at(s) not in addresses
    large_enough = read_x_at(s)
    s.run({"x": np.ones(10, np.float32)}, out={"y": np.empty(10, np.float32)})
    assert read_x_at(s) == large_enough  # the block given back last, large enough: no allocation
    assert not released(echo_log)
    s.close()
    gc.collect()
    assert sorted(released(echo_log)) == sorted(["released 256 bytes"] * 2 + ["released 4000 bytes"] * 2)


def test_pinned_and_device_memory_pass_as_they_are(staged, echo_log):
    """Session.empty memory is pinned already: read where it lies, nothing staged."""
    x, y = staged.empty(100), staged.empty(100)
    x[:] = np.arange(100)
    before = staged._stats()
    staged.run({"x": x}, out={"y": y})
    np.testing.assert_array_equal(y, 2 * np.arange(100))
    assert read_x_at(staged) == x.ctypes.data
    assert handed(echo_log) == ["x cuda_pinned, y cuda_pinned"]
    assert staged._stats()["bytes_staged"] == before["bytes_staged"]
    assert staged._stats()["inputs_staged"] == before["inputs_staged"]
    # A pageable out= beside a pinned input: only y goes through a block.
    plain_y = np.empty(100, np.float32)
    staged.run({"x": x}, out={"y": plain_y})
    np.testing.assert_array_equal(plain_y, 2 * np.arange(100))
    assert read_x_at(staged) == x.ctypes.data
    assert staged._stats()["bytes_staged"] == before["bytes_staged"] + plain_y.nbytes


def test_a_run_that_fails_writes_nothing_back_and_its_blocks_serve_the_next(staged, echo_log):
    y = np.full(8, 7.0, np.float32)
    with pytest.raises(jb.InputError, match="negative x"):
        staged.run({"x": -np.ones(8, np.float32)}, out={"y": y})
    assert (y == 7.0).all()  # the caller's buffer is not written with a failed run's block
    staged.run({"x": np.ones(8, np.float32)}, out={"y": y})
    assert (y == 2.0).all()
    assert not released(echo_log)


@pytest.mark.parametrize("backend", ["optechopin", "optechopinasync"])
def test_run_async_stages_before_it_returns_and_copies_back_before_it_completes(echo_log, backend):
    """The worker pool's run (optechopin) and the plugin's own asynchronous one (optechopinasync): the
    inputs are copied while the caller waits, so its x may change at once; y is the caller's when the
    future is done."""
    s = jb.Session("anything", backend=backend, staging="pinned")
    assert s.async_mode == ("native" if backend.endswith("async") else "pool")
    for n in (5, SPLIT_FROM // 4 + 3):
        x = np.arange(n, dtype=np.float32)
        y = np.full(n, np.nan, np.float32)
        future = s.run_async({"x": x}, out={"y": y})
        x[:] = -1  # staged already: the run reads its own copy
        assert future.result(timeout=60)["y"] is y
        np.testing.assert_array_equal(y, 2 * np.arange(n, dtype=np.float32))
        assert read_x_at(s) != x.ctypes.data
    s.close()


def test_many_threads_on_one_staged_session_each_get_their_own_result(staged):
    """Runs at once take blocks of their own (a block is never shared by two runs in flight)."""
    def one(i):
        n = 1 + (i * 7919) % 3000
        x = np.full(n, float(i), np.float32)
        y = np.empty(n, np.float32)
        if i % 2:
            staged.run({"x": x}, out={"y": y})
        else:
            staged.run_async({"x": x}, out={"y": y}).result(timeout=60)
        return bool((y == 2 * i).all())

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert all(pool.map(one, range(400)))


def copy_threads() -> int:
    """The threads of this process named as the stager names its own (a thread may end while we look)."""
    def name(task: Path) -> str:
        try:
            return (task / "comm").read_text().strip()
        except (FileNotFoundError, ProcessLookupError):
            return ""

    return sum(name(task) == "jb-stage" for task in Path("/proc/self/task").iterdir())


@pytest.mark.skipif((os.cpu_count() or 1) < 2 or not Path("/proc/self/task").is_dir(),
                    reason="copies are split over threads on a machine of 2+ cores, counted in /proc")
def test_a_large_copy_is_split_over_the_sessions_own_threads_which_end_with_it(echo_log):
    s = jb.Session("anything", backend="optechopin", staging="pinned")
    small = np.ones(SPLIT_FROM // 4 - 1, np.float32)
    s.run({"x": small}, out={"y": np.empty_like(small)})
    assert copy_threads() == 0  # below the split: the caller's thread alone
    large = np.ones(SPLIT_FROM // 4, np.float32)
    y = np.empty_like(large)
    s.run({"x": large}, out={"y": y})
    assert (y == 2).all()
    assert 1 <= copy_threads() <= min(os.cpu_count(), 8) - 1
    s.close()
    assert copy_threads() == 0


def test_staging_is_refused_where_the_session_reads_host_memory_in_place(echo_plugins, monkeypatch, add_f32):
    monkeypatch.setenv("JUNO_BRIDGE_PLUGIN_PATH", str(echo_plugins))
    with pytest.raises(jb.InvalidArgumentError) as e:
        jb.Session("anything", backend="optecho", staging="pinned")  # no pinned memory of its own
    assert "option staging=pinned" in str(e.value) and "backend optecho" in str(e.value)
    assert "leave staging off" in str(e.value)
    with pytest.raises(jb.InvalidArgumentError) as e:
        jb.Session(add_f32, staging="pinned")
    assert "providers cpu) computes from host memory" in str(e.value) and "providers cuda,cpu" in str(e.value)
    with pytest.raises(jb.InvalidArgumentError, match="option 'staging' must be off or pinned, got 'always'"):
        jb.Session(add_f32, staging="always")


def test_where_cuda_was_asked_for_and_skipped_the_session_runs_unstaged_saying_so(add_f32, caplog):
    if "cuda" in jb.onnxruntime_info()["providers"]:
        pytest.skip("this ONNX Runtime has the CUDA provider: it would not be skipped")
    with caplog.at_level(logging.WARNING, logger="juno_bridge.providers"):
        s = jb.Session(add_f32, providers=("cuda", "cpu"), staging="pinned")
    assert s.providers == ["cpu"]
    assert any("option staging=pinned: the CUDA provider is not in use" in r.getMessage() for r in caplog.records)
    a = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(s.run({"a": a, "b": a})["c"], 2 * a)
    assert s._stats()["inputs_staged"] == 0 and s._stats()["input_addresses"][0] == a.ctypes.data
    with pytest.raises(jb.BackendUnavailableError, match="execution provider 'cuda'"):
        jb.Session(add_f32, providers=("cuda", "cpu"), staging="pinned", require_providers=True)


def test_staging_is_the_sessions_own_option_so_it_shares_the_backend(staged, echo_log):
    plain = jb.Session("anything", backend="optechopin")
    assert plain._stats()["backend_id"] == staged._stats()["backend_id"]
    x = np.ones(16, np.float32)
    plain.run({"x": x}, out={"y": np.empty(16, np.float32)})
    assert read_x_at(plain) == x.ctypes.data and handed(echo_log)[-1] == "x cpu, y cpu"
    staged.run({"x": x}, out={"y": np.empty(16, np.float32)})
    assert read_x_at(staged) != x.ctypes.data and handed(echo_log)[-1] == "x cuda_pinned, y cuda_pinned"


def test_a_bound_loop_is_staged_every_run_so_refills_in_place_are_seen(staged, echo_log):
    """bind(): the caller refills x in place between runs; each run copies it afresh into the same block."""
    x, y = np.zeros(32, np.float32), np.empty(32, np.float32)
    bound = staged.bind({"x": x}, out={"y": y})
    blocks = set()
    for event in range(1, 4):
        x[:] = event
        bound.run()
        assert (y == 2 * event).all()
        blocks.add(read_x_at(staged))
    assert len(blocks) == 1 and x.ctypes.data not in blocks
    assert handed(echo_log)[-3:] == ["x cuda_pinned, y cuda_pinned"] * 3
