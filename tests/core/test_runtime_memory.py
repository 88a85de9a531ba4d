"""RuntimeMemory, the memory juno-bridge's backend allocates (outputs given no buffer, Session.empty), as a
DLPack producer: torch, numpy and juno-bridge's own inputs take it without a copy, and it lives until its
last consumer lets it go. On a GPU session with output_device="cuda" it is how device outputs come back
(tests/core/test_cuda_devices.py); here the same exporter is tested over host memory, on every machine."""
from __future__ import annotations

import ctypes
import gc
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import juno_bridge as jb
from juno_bridge.dtypes import NUMPY_DTYPES

torch = pytest.importorskip("torch")
DTYPES = sorted(NUMPY_DTYPES.values(), key=str)
KDLCPU, KDLCUDA = 1, 2


@settings(max_examples=60, deadline=None)
@given(dtype=st.sampled_from(DTYPES), shape=st.lists(st.integers(0, 5), min_size=0, max_size=5))
def test_torch_and_numpy_take_the_memory_in_place_with_its_shape_and_dtype(add_session, dtype, shape):
    a = add_session.empty(shape, dtype)
    a.reshape(-1).view(np.uint8)[:] = np.arange(a.nbytes, dtype=np.uint8)
    memory = a.base
    assert isinstance(memory, jb.RuntimeMemory)
    assert memory.shape == tuple(shape) and memory.dtype == dtype and memory.__dlpack_device__() == (KDLCPU, 0)
    t = torch.from_dlpack(memory)
    assert tuple(t.shape) == tuple(shape) and t.is_contiguous()
    if a.size:
        assert t.data_ptr() == memory.address
    assert bytes(t.view(-1).view(torch.uint8).numpy()) == a.tobytes()
    if dtype.name != "bfloat16":  # numpy's from_dlpack knows no bfloat16
        n = np.from_dlpack(memory)
        assert n.dtype == dtype and n.shape == tuple(shape) and n.ctypes.data == a.ctypes.data


def test_an_output_the_runtime_allocated_is_exported_in_place_and_read_as_an_input(add_session):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    c = add_session.run({"a": a, "b": a})["c"]
    memory = c.base
    assert repr(memory) == "RuntimeMemory(shape=(2, 3), dtype=float32, device='cpu')"
    t = torch.from_dlpack(memory)
    assert t.data_ptr() == c.ctypes.data
    t += 1  # the consumer writes the same memory
    np.testing.assert_array_equal(c, 2 * a + 1)
    d = add_session.run({"a": memory, "b": t})["c"]  # juno-bridge's own inputs take it too, in place
    np.testing.assert_array_equal(d, 2 * (2 * a + 1))
    assert add_session._stats()["input_addresses"][0] == memory.address


def test_the_export_holds_the_memory_until_the_consumer_lets_it_go(add_f32):
    """(That the memory outlives every other reference, with the backend's release seen when the consumer
    goes: tests/native/test_plugin_sdk.py.)"""
    s = jb.Session(add_f32)
    a = s.empty((256,))
    a[:] = 7.0
    memory = a.base
    held = sys.getrefcount(memory)
    t = torch.from_dlpack(memory)
    assert sys.getrefcount(memory) == held + 1
    del a
    s.close()
    gc.collect()
    t += 1.0  # the same memory, still the consumer's to write
    assert t.data_ptr() == memory.address and bool((t == 8.0).all())
    del t
    gc.collect()
    assert sys.getrefcount(memory) == held - 1  # the export's reference is gone, and the array's


def test_a_capsule_no_consumer_takes_releases_the_memory(add_session):
    memory = add_session.empty((4,)).base
    held = sys.getrefcount(memory)
    for max_version in (None, (1, 0), (1, 3)):
        capsule = memory.__dlpack__(max_version=max_version)
        name = ctypes.pythonapi.PyCapsule_GetName
        name.restype, name.argtypes = ctypes.c_char_p, [ctypes.py_object]
        assert name(capsule) == (b"dltensor" if max_version is None else b"dltensor_versioned")
        assert sys.getrefcount(memory) == held + 1
        del capsule
        assert sys.getrefcount(memory) == held


def test_the_legacy_capsule_is_taken_by_a_consumer_of_dlpack_0x(add_session):
    a = add_session.empty((3,))
    a[:] = [1.0, 2.0, 3.0]
    t = torch.utils.dlpack.from_dlpack(a.base.__dlpack__())  # a bare capsule, as DLPack 0.x consumers take it
    assert t.data_ptr() == a.ctypes.data and t.tolist() == [1.0, 2.0, 3.0]


def test_a_copy_or_another_device_is_refused_never_made(add_session):
    memory = add_session.empty((2,)).base
    with pytest.raises(BufferError, match=r"without a copy \(copy=True asked for one\)"):
        memory.__dlpack__(copy=True)
    with pytest.raises(BufferError, match="the memory is on cpu:0, not on cuda:0; juno-bridge never copies"):
        memory.__dlpack__(dl_device=(KDLCUDA, 0))
    assert memory.__dlpack__(copy=False, dl_device=(KDLCPU, 0)) is not None


def test_output_device_cuda_is_refused_where_no_cuda_provider_is_asked_for(add_f32):
    with pytest.raises(jb.InvalidArgumentError, match="option output_device=cuda needs ONNX Runtime's CUDA provider, "
                                                      "and the session asks for providers cpu"):
        jb.Session(add_f32, output_device="cuda")
    with pytest.raises(jb.InvalidArgumentError, match="option 'output_device' must be cpu or cuda, got 'gpu'"):
        jb.Session(add_f32, output_device="gpu")
    with pytest.raises(jb.InvalidArgumentError, match="option 'output_device' cuda: the python backend allocates "
                                                      "its outputs in host memory"):
        jb.Session("python:helpers.pyalgos:reco", output_device="cuda")
    with jb.Session(add_f32, output_device="cpu") as s:  # the default, said out loud
        ones = np.ones((1, 2), np.float32)
        assert isinstance(s.run({"a": ones, "b": ones})["c"], np.ndarray)
