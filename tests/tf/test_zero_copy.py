"""TensorFlow's zero-copy rule: it keeps a caller's pointer only when it is 64-byte aligned. Aligned
inputs are read in place (proven by the address TensorFlow read); unaligned ones, wherever malloc put
them, are staged in aligned memory the session keeps (one warning per session, counted), or refused with
the fix under copy_unaligned=0; outputs are TensorFlow's own memory, handed over."""
import logging
import threading

import numpy as np
import pytest
from hypothesis import given, strategies as st

from helpers import tf_models as tm

import juno_bridge as jb

DTYPES = [np.float32, np.float64, np.float16, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.int64,
          np.uint32, np.uint64, np.bool_]


@pytest.fixture(scope="module")
def session():
    return jb.Session(tm.tiny())


@given(shape=st.lists(st.integers(0, 9), min_size=0, max_size=4), dtype=st.sampled_from(DTYPES))
def test_empty_is_64_byte_aligned_c_contiguous_and_of_the_asked_shape(shape, dtype):
    a = jb.empty(shape, dtype)
    assert a.ctypes.data % 64 == 0
    assert a.shape == tuple(shape) and a.dtype == np.dtype(dtype) and a.flags.c_contiguous
    a[...] = 1  # writable, and the whole extent is its own
    assert a.all() if a.size else True


def test_empty_takes_an_integer_shape_and_refuses_an_alignment_that_is_not_a_power_of_two():
    assert jb.empty(5, np.int32).shape == (5,)
    with pytest.raises(ValueError, match="power of two"):
        jb.empty(4, alignment=48)


def test_batch_assembler_buffer_is_64_byte_aligned():
    s = jb.Session(tm.juno())
    for batch in (1, 3, 64):
        assert jb.BatchAssembler(s, batch).batch.ctypes.data % 64 == 0


def test_aligned_input_is_read_in_place(session):
    x = tm.aligned(np.ones((3, 8), np.float32))
    before = session._stats()["tensors_wrapped"]
    session.run({"x": x})
    stats = session._stats()
    assert stats["input_addresses"] == [x.ctypes.data]
    assert stats["tensors_wrapped"] == before + 1


def test_aligned_input_stages_nothing():
    s = jb.Session(tm.tiny(), shared=False)
    x = tm.aligned(np.ones((2, 8), np.float32))
    for _ in range(3):
        s.run([x])
        assert s._stats()["input_addresses"] == [x.ctypes.data]
    assert s._stats()["inputs_staged"] == 0 and s._stats()["tensors_wrapped"] == 3


def test_strict_mode_refuses_an_unaligned_input_naming_the_alignment_and_the_offset():
    s = jb.Session(tm.tiny(), config={"copy_unaligned": "0"})
    x = tm.unaligned(np.ones((3, 8), np.float32), offset=4)
    assert x.ctypes.data % 64 == 4
    with pytest.raises(jb.InputError, match=r"input 'x': expected data 64-byte aligned, got 0x[0-9a-f]+, 4 bytes past "
                                            r"a 64-byte boundary.*copy_unaligned=0.*juno_bridge\.empty"):
        s.run({"x": x})
    assert s._stats()["inputs_staged"] == 0
    s.run({"x": tm.aligned(x)})  # aligned memory is still taken


def test_unaligned_input_is_staged_in_the_sessions_own_aligned_memory_with_one_warning(caplog):
    s = jb.Session(tm.tiny(), shared=False)
    want = s.run({"x": tm.aligned(np.arange(24, dtype=np.float32).reshape(3, 8))})["y"]
    raw = jb.empty((3 * 8 * 4 + 64,), np.uint8)
    x = raw[4:4 + 3 * 8 * 4].view(np.float32).reshape(3, 8)  # 4 bytes past a 64-byte boundary
    x[...] = np.arange(24, dtype=np.float32).reshape(3, 8)
    wrapped = s._stats()["tensors_wrapped"]
    with caplog.at_level(logging.WARNING, logger="juno_bridge.tensorflow"):
        outputs = [s.run({"x": x})["y"] for _ in range(3)]
    for y in outputs:
        np.testing.assert_array_equal(y, want)
    stats = s._stats()
    assert stats["inputs_staged"] == 3 and stats["tensors_wrapped"] == wrapped  # copies, none over caller memory
    staged_at = stats["input_addresses"][0]
    assert staged_at % 64 == 0 and staged_at != x.ctypes.data
    s.run({"x": x})
    assert s._stats()["input_addresses"][0] == staged_at  # the same buffer, kept for the next run
    warnings = [r for r in caplog.records if r.name == "juno_bridge.tensorflow"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "input 'x'" in warnings[0].getMessage() and "4 bytes past a 64-byte boundary" in warnings[0].getMessage()
    assert "juno_bridge.empty" in warnings[0].getMessage() and "copy_unaligned=0" in warnings[0].getMessage()


@given(offset=st.sampled_from(range(4, 64, 4)), batch=st.integers(0, 40), seed=st.integers(0, 2**32 - 1))
def test_any_unaligned_placement_gives_the_aligned_result(session, offset, batch, seed):
    x = np.random.default_rng(seed).standard_normal((batch, 8)).astype(np.float32)
    want = session.run({"x": tm.aligned(x)})["y"]
    staged = session._stats()["inputs_staged"]
    got = session.run({"x": tm.unaligned(x, offset)})["y"]
    np.testing.assert_array_equal(got, want)
    assert session._stats()["inputs_staged"] == staged + (batch > 0)  # an empty input needs no memory


def test_staged_inputs_of_runs_on_many_threads_do_not_mix():
    s = jb.Session(tm.tiny(), shared=False)
    xs = [np.random.default_rng(k).standard_normal((16, 8)).astype(np.float32) for k in range(4)]
    wants = [s.run({"x": tm.aligned(x)})["y"] for x in xs]
    unaligned = [tm.unaligned(x, 4 * (k + 1)) for k, x in enumerate(xs)]
    errors = []

    def work(k):
        try:
            for _ in range(100):
                np.testing.assert_array_equal(s.run({"x": unaligned[k]})["y"], wants[k])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert s._stats()["inputs_staged"] == 400


def test_a_staged_input_passed_through_is_not_handed_back_as_the_sessions_memory():
    s = jb.Session(tm.passthrough(), shared=False)
    first = tm.unaligned(np.arange(12, dtype=np.float32).reshape(3, 4), 8)
    out = s.run({"x": first})
    s.run({"x": tm.unaligned(np.full((3, 4), -1, np.float32), 8)})  # the next run overwrites the staging memory
    np.testing.assert_array_equal(out["same"], np.arange(12, dtype=np.float32).reshape(3, 4))
    np.testing.assert_array_equal(out["twice"], 2 * np.arange(12, dtype=np.float32).reshape(3, 4))


def test_handed_over_output_is_tensorflows_memory_not_a_copy(session):
    y = session.run({"x": tm.aligned(np.ones((3, 8), np.float32))})["y"]
    assert y.base is not None and y.base.address == y.ctypes.data
    assert y.ctypes.data % 64 == 0


def test_output_into_the_callers_buffer_is_written_in_place(session):
    x = tm.aligned(np.random.default_rng(1).standard_normal((5, 8)).astype(np.float32))
    y = np.full((5, 4), np.nan, np.float32)
    result = session.run({"x": x}, out={"y": y})
    assert np.shares_memory(result["y"], y)
    np.testing.assert_array_equal(y, session.run({"x": x})["y"])


def test_an_output_that_is_the_input_itself_is_never_handed_back_as_owned():
    s = jb.Session(tm.passthrough())
    x = tm.aligned(np.arange(12, dtype=np.float32).reshape(3, 4))
    out = s.run({"x": x})
    assert not np.shares_memory(out["same"], x)
    x[...] = -1  # the caller reuses its buffer: the output keeps the values of the run
    np.testing.assert_array_equal(out["same"], np.arange(12, dtype=np.float32).reshape(3, 4))
    np.testing.assert_array_equal(out["twice"], 2 * np.arange(12, dtype=np.float32).reshape(3, 4))


def test_the_callers_input_is_never_written(session):
    x = tm.aligned(np.random.default_rng(2).standard_normal((7, 8)).astype(np.float32))
    keep = x.copy()
    for _ in range(3):
        session.run({"x": x})
    np.testing.assert_array_equal(x, keep)
