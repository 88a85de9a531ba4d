"""BatchAssembler: per-event callers get batched inference, event by event, without copies."""
import gc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import juno_bridge as jb
from helpers import pyalgos

import onnx
from onnx import TensorProto, helper

N = pyalgos.N


def random_event(rng, n=N):
    hits = int(rng.integers(0, 3 * n))
    return (rng.integers(0, n, hits).astype(np.int32), rng.random(hits, dtype=np.float32),
            rng.random(hits, dtype=np.float32) * 100)


def dense(event, n=N):
    return jb.scatter_hits(*event, num_pmts=n)


def sum_model(path, batch):
    """ONNX: total[b] = sum of pmt[b] over channels and PMTs; batch is an int or a symbolic name."""
    x = helper.make_tensor_value_info("pmt", TensorProto.FLOAT, [batch, 2, N])
    y = helper.make_tensor_value_info("total", TensorProto.FLOAT, [batch])
    axes = helper.make_tensor("axes", TensorProto.INT64, [2], [1, 2])
    graph = helper.make_graph([helper.make_node("ReduceSum", ["pmt", "axes"], ["total"], keepdims=0)],
                              "sum", [x], [y], [axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return str(path)


def test_results_come_back_per_event_when_the_batch_is_full():
    rng = np.random.default_rng(0)
    asm = jb.BatchAssembler(jb.Session("python:helpers.pyalgos:reco"), 4, num_pmts=N)
    events = [random_event(rng) for _ in range(4)]
    for ev in events[:3]:
        assert asm.add(*ev) == []
    assert asm.pending == 3
    results = asm.add(*events[3])
    assert [r[0] for r in results] == [0, 1, 2, 3] and asm.pending == 0 and asm.runs == 1
    for (_, rows), ev in zip(results, events):
        d = dense(ev)
        assert rows["energy"].shape == () and rows["vertex"].shape == (3,)
        np.testing.assert_allclose(rows["energy"], d[0].sum(), rtol=1e-5)
        np.testing.assert_array_equal(rows["vertex"], d[1, :3])


def test_the_model_reads_the_aligned_batch_buffer_and_rows_view_the_batch_output():
    session = jb.Session("python:helpers.pyalgos:reco")
    asm = jb.BatchAssembler(session, 3, num_pmts=N)
    assert asm.batch.shape == (3, 2, N) and asm.batch.ctypes.data % 64 == 0
    rng = np.random.default_rng(1)
    results = [r for _ in range(3) for r in asm.add(*random_event(rng))]
    assert session._stats()["input_addresses"] == [asm.batch.ctypes.data]
    addresses = [rows["energy"].ctypes.data for _, rows in results]
    assert addresses == [addresses[0] + 4 * e for e in range(3)]  # one float32 [3] output, sliced


def test_rows_outlive_the_assembler():
    asm = jb.BatchAssembler(jb.Session("python:helpers.pyalgos:reco"), 1, num_pmts=N)
    (_, rows), = asm.add(np.array([1], np.int32), np.array([2.5], np.float32), np.array([1], np.float32))
    del asm
    gc.collect()
    assert float(rows["energy"]) == 2.5


def test_flush_runs_a_partial_batch_of_a_dynamic_batch_model(tmp_path):
    session = jb.Session(sum_model(tmp_path / "dyn.onnx", "B"))
    asm = jb.BatchAssembler(session, 8, num_pmts=N, empty=0.0)
    rng = np.random.default_rng(2)
    events = [random_event(rng) for _ in range(3)]
    for ev in events:
        asm.add(*ev)
    results = asm.flush()
    assert [e for e, _ in results] == [0, 1, 2] and asm.flush() == []
    for (_, rows), ev in zip(results, events):
        np.testing.assert_allclose(rows["total"], dense(ev).sum(), rtol=1e-5)


def test_flush_pads_a_fixed_batch_model_with_empty_events(tmp_path):
    session = jb.Session(sum_model(tmp_path / "fixed.onnx", 4))
    asm = jb.BatchAssembler(session, 4, num_pmts=N, empty=1.0)
    asm.batch[...] = 99  # stale data from an earlier batch must not leak into the padding
    results = asm.add(np.array([0], np.int32), np.array([3.0], np.float32), np.array([5.0], np.float32)) + asm.flush()
    assert len(results) == 1
    # The event: nPE 3 and time 5 on PMT 0, every other PMT dark with 1.0 in both channels.
    assert float(results[0][1]["total"]) == pytest.approx(3 + 5 + 2 * (N - 1))
    np.testing.assert_array_equal(asm.batch[1:], 1.0)


def test_next_slot_and_submit_let_the_caller_fill_a_slot_in_place():
    asm = jb.BatchAssembler(jb.Session("python:helpers.pyalgos:reco"), 2, num_pmts=N)
    event_id, slot = asm.next_slot()
    assert event_id == 0 and slot.shape == (2, N) and slot.ctypes.data == asm.batch.ctypes.data
    slot[...] = 1
    assert asm.submit() == []
    with pytest.raises(jb.InvalidArgumentError, match="submit"):
        asm.submit()
    event_id, slot = asm.next_slot()
    assert event_id == 1 and slot.ctypes.data == asm.batch[1].ctypes.data
    with pytest.raises(jb.InvalidArgumentError, match="not been submitted"):
        asm.next_slot()
    slot[...] = 2
    results = asm.submit()
    assert [float(r["energy"]) for _, r in results] == [N, 2 * N]


def test_a_bad_event_is_refused_and_takes_no_slot():
    asm = jb.BatchAssembler(jb.Session("python:helpers.pyalgos:reco"), 2, num_pmts=N)
    with pytest.raises(jb.InputError, match=f"pmt id {N} "):
        asm.add(np.array([N], np.int32), np.ones(1, np.float32), np.ones(1, np.float32))
    assert asm.pending == 0
    asm.add(np.array([0], np.int32), np.ones(1, np.float32), np.ones(1, np.float32))
    assert asm.pending == 1


def test_a_model_that_does_not_take_the_batch_shape_is_refused_naming_its_input():
    with pytest.raises(jb.InputError) as e:
        jb.BatchAssembler(jb.Session("python:helpers.pyalgos:reco"), 2, num_pmts=17612)
    assert "'pmt'" in str(e.value) and "[B, 2, 16]" in str(e.value) and "[2, 2, 17612]" in str(e.value)
    with pytest.raises(jb.InputError, match="one input"):
        jb.BatchAssembler(jb.Session("python:helpers.pyalgos:recording"), 2)


@settings(max_examples=20, deadline=None)
@given(batch=st.integers(1, 5), count=st.integers(0, 12), seed=st.integers(0, 2**16))
def test_every_event_gets_its_own_result_in_order_whatever_the_batch_size(batch, count, seed):
    rng = np.random.default_rng(seed)
    asm = jb.BatchAssembler(jb.Session("python:helpers.pyalgos:reco"), batch, num_pmts=N)
    events = [random_event(rng) for _ in range(count)]
    results = [r for ev in events for r in asm.add(*ev)] + asm.flush()
    assert [e for e, _ in results] == list(range(count))
    assert asm.runs == -(-count // batch)
    for (_, rows), ev in zip(results, events):
        np.testing.assert_allclose(rows["energy"], dense(ev)[0].sum(), rtol=1e-5)
