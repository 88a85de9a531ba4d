"""TensorFlow's zero-copy rule: it keeps a caller's pointer only when it is 64-byte aligned. Aligned
inputs are read in place (proven by the address TensorFlow read), unaligned ones are refused with the
fix, or copied when the session allowed it; outputs are TensorFlow's own memory, handed over."""
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


def test_unaligned_input_is_refused_with_the_fix(session):
    x = tm.unaligned(np.ones((3, 8), np.float32))
    assert x.ctypes.data % 64 == 16
    with pytest.raises(jb.InputError, match=r"input 'x'.*not 64-byte aligned.*juno_bridge\.empty.*copy_unaligned"):
        session.run({"x": x})


def test_unaligned_input_is_copied_only_when_the_session_allows_it():
    s = jb.Session(tm.tiny(), config={"copy_unaligned": "1"})
    x = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    before = s._stats()["tensors_wrapped"]
    got = s.run({"x": tm.unaligned(x)})["y"]
    stats = s._stats()
    assert stats["tensors_wrapped"] == before  # a copy, and counted as none of ours
    assert stats["input_addresses"][0] % 64 == 0
    np.testing.assert_array_equal(got, jb.Session(tm.tiny()).run({"x": tm.aligned(x)})["y"])


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
