"""Session.empty: host memory the session reads fastest, for the caller to fill in place. On a CPU session
it is plain 64-byte-aligned host memory (pinned memory needs the CUDA provider: tests/core/test_cuda_devices.py);
it is read where it lies, outlives the session, and bad requests are refused by name."""
from __future__ import annotations

import gc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import juno_bridge as jb
from juno_bridge._core import RuntimeMemory
from juno_bridge.dtypes import NUMPY_DTYPES

DTYPES = sorted(NUMPY_DTYPES.values(), key=str)


@settings(max_examples=60, deadline=None)
@given(dtype=st.sampled_from(DTYPES), shape=st.lists(st.integers(0, 6), min_size=0, max_size=5))
def test_the_array_has_the_shape_and_dtype_asked_for_in_aligned_host_memory(add_session, dtype, shape):
    a = add_session.empty(shape, dtype)
    assert a.shape == tuple(shape) and a.dtype == dtype
    assert a.flags.c_contiguous and a.flags.writeable and a.flags.owndata is False
    assert isinstance(a.base, RuntimeMemory) and a.base.address == a.ctypes.data
    assert a.ctypes.data % 64 == 0
    assert a.base.device == "cpu"  # no GPU: nothing to pin for
    a.reshape(-1).view(np.uint8)[:] = 0xA5  # every byte is the caller's to write
    assert (a.reshape(-1).view(np.uint8) == 0xA5).all()


def test_an_int_is_a_one_dimensional_shape_and_float32_the_default(add_session):
    a = add_session.empty(7)
    assert a.shape == (7,) and a.dtype == np.float32


def test_the_arrays_are_read_where_they_lie(add_session):
    a, b = add_session.empty((3, 4)), add_session.empty((3, 4))
    c = add_session.empty((3, 4))
    a[...] = np.arange(12).reshape(3, 4)
    b[...] = 0.5
    assert add_session.run({"a": a, "b": b}, out={"c": c})["c"] is c
    assert add_session._stats()["input_addresses"] == [a.ctypes.data, b.ctypes.data]
    np.testing.assert_array_equal(c, np.arange(12).reshape(3, 4) + 0.5)


def test_the_memory_outlives_the_session(add_f32):
    s = jb.Session(add_f32)
    a = s.empty((1000,))
    s.close()
    gc.collect()
    a[:] = 2.0
    assert a.sum() == 2000.0
    with pytest.raises(jb.InvalidArgumentError, match="the session is closed"):
        s.empty(3)


@pytest.mark.parametrize("shape, words", [((2, -1), "shape [2, -1] has a negative dim"),
                                          ((1,) * 17, "rank 17 is above the maximum of 16"),
                                          ((2**40, 2**40), "shape [1099511627776, 1099511627776] is too large")])
def test_a_shape_outside_the_limits_is_refused_by_name(add_session, shape, words):
    with pytest.raises(jb.InvalidArgumentError) as e:
        add_session.empty(shape)
    assert words in str(e.value)


def test_a_dtype_juno_bridge_does_not_pass_is_refused_naming_those_it_does(add_session):
    with pytest.raises(jb.InputTypeError, match=r"dtype complex64 is not one juno-bridge passes \(float32, "):
        add_session.empty(3, np.complex64)
    with pytest.raises(TypeError):
        add_session.empty((2, 2.5))  # a dim is an integer

