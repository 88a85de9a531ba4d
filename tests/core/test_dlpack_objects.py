"""Any DLPack object in host memory (pinned or not) is an input or an out= buffer of run, bind and run_async,
read and written where it lies and checked as the numpy array of the same memory is; one in CUDA memory is
checked alike and handed to the core as a device view, which a session computing on the CPU refuses naming
both; one on another device, or with only __cuda_array_interface__, is refused by name.
numpy's own DLPack export stands in for other libraries here (tests/torch/test_torch_tensors.py: torch's)."""
from __future__ import annotations

import re
import sys

import numpy as np
import pytest

import juno_bridge as jb
from helpers import onnx_models
from helpers.dlpack_fakes import OnDevice, Pinned


class Exporter:
    """An array object that has only the DLPack protocol: none of numpy's array or buffer interfaces."""

    def __init__(self, array, legacy=False):
        self.array = array
        self.legacy = legacy  # an exporter from before DLPack 1.0: no keywords, the "dltensor" capsule
        self.exports = 0

    def __dlpack_device__(self):
        return self.array.__dlpack_device__()

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        if self.legacy and (max_version, dl_device, copy) != (None, None, None):
            raise TypeError("__dlpack__() got an unexpected keyword argument")
        self.exports += 1
        return self.array.__dlpack__(stream=stream, max_version=max_version, dl_device=dl_device, copy=copy)


class CudaArray:
    """An object with only __cuda_array_interface__ (as a numba device array)."""

    __cuda_array_interface__ = {"shape": (2, 3), "typestr": "<f4", "data": (0xDEAD0000, False), "version": 3}


def raises(error, *fragments):
    return pytest.raises(error, match="(?s)" + "".join(f"(?=.*{re.escape(f)})" for f in fragments))


def operands(rows=2, cols=3):
    a = np.arange(rows * cols, dtype=np.float32).reshape(rows, cols)
    return a, a * 0.5 + 1


@pytest.mark.parametrize("legacy", [False, True], ids=["dltensor_versioned", "dltensor"])
def test_dlpack_inputs_are_read_where_they_lie_and_out_is_written_in_place(add_session, legacy):
    a, b = operands()
    c = np.full_like(a, np.nan)
    xa, xb, xc = Exporter(a, legacy), Exporter(b, legacy), Exporter(c, legacy)
    result = add_session.run({"a": xa, "b": xb}, out={"c": xc})
    assert result["c"] is xc
    assert add_session._stats()["input_addresses"] == [a.ctypes.data, b.ctypes.data]
    np.testing.assert_array_equal(c, a + b)  # the exporter's own memory holds the result
    assert (xa.exports, xb.exports, xc.exports) == (1, 1, 1)


def test_dlpack_buffers_in_bind_and_run_async_are_the_callers_memory(add_session):
    a, b = operands()
    c = np.full_like(a, np.nan)
    binding = add_session.bind({"a": Exporter(a), "b": Exporter(b)}, out={"c": Exporter(c)})
    a[...] = 10  # refilled in place, as a per-event loop does
    binding.run()
    assert add_session._stats()["input_addresses"] == [a.ctypes.data, b.ctypes.data]
    np.testing.assert_array_equal(c, 10 + b)
    c[...] = np.nan
    out = {"c": Exporter(c)}
    assert add_session.run_async([Exporter(a), Exporter(b)], out=out).result()["c"] is out["c"]
    assert add_session._stats()["input_addresses"] == [a.ctypes.data, b.ctypes.data]
    np.testing.assert_array_equal(c, 10 + b)


def test_each_export_is_released_once_the_run_is_done(add_session):
    # The capsule's deleter drops the exporter's reference to its array: no export outlives the run.
    a, b = operands()
    c = np.empty_like(a)
    counts = [sys.getrefcount(x) for x in (a, b, c)]
    for _ in range(3):
        add_session.run({"a": Exporter(a), "b": Exporter(b, legacy=True)}, out={"c": Exporter(c)})
        add_session.run_async({"a": Exporter(a), "b": Exporter(b)}, out={"c": Exporter(c)}).result()
    binding = add_session.bind({"a": Exporter(a), "b": Exporter(b)}, out={"c": Exporter(c)})
    assert all(sys.getrefcount(x) > n for x, n in zip((a, b, c), counts))  # held while the binding lives
    del binding
    assert [sys.getrefcount(x) for x in (a, b, c)] == counts


def test_a_dlpack_array_gets_the_checks_and_messages_of_the_numpy_array_it_exports(add_session):
    a, b = operands()
    wide = np.zeros((2, 6), np.float32)
    for bad, error in [(wide[:, ::2], jb.InputError), (a.T.copy().T, jb.InputError),
                       (a.astype(np.float64), jb.InputTypeError), (a.astype(np.complex64), jb.InputTypeError),
                       (np.zeros((2, 3, 1), np.float32), jb.InputError)]:
        with pytest.raises(error) as from_numpy:
            add_session.run({"a": bad, "b": b})
        with pytest.raises(error) as from_dlpack:
            add_session.run({"a": Exporter(bad), "b": b})
        assert str(from_dlpack.value) == str(from_numpy.value)
        with pytest.raises(error) as from_dlpack_out:
            add_session.run({"a": a, "b": b}, out={"c": Exporter(bad)})
        assert str(from_dlpack_out.value) == str(from_numpy.value).replace("input 'a'", "output 'c'")


def test_a_read_only_dlpack_export_is_refused_as_out(add_session):
    a, b = operands()
    c = np.zeros_like(a)
    c.setflags(write=False)
    with raises(jb.InputError, "output 'c'", "read-only", "Exporter"):
        add_session.run({"a": a, "b": b}, out={"c": Exporter(c)})
    assert not c.any()
    np.testing.assert_array_equal(add_session.run({"a": Exporter(c), "b": b})["c"], b)  # fine as an input


def test_cuda_memory_is_refused_by_a_session_computing_on_the_cpu_naming_both(add_session):
    a, b = operands()
    assert add_session.devices == ["cpu"]
    for inputs, out, what in [({"a": OnDevice(), "b": b}, None, "input 'a'"),
                              ({"a": a, "b": b}, {"c": OnDevice()}, "output 'c'")]:
        said = (what, "the buffer is in cuda:1 memory", "this session computes from host memory",
                "backend onnxruntime, providers cpu", "never copies between devices")
        with raises(jb.InputError, *said):
            add_session.run(inputs, out=out)
        with raises(jb.InputError, *said):
            add_session.run_async(inputs, out=out).result()
        with raises(jb.InputError, *said):
            add_session.bind(inputs, out=out or {"c": np.empty_like(a)}).run()


def test_a_cuda_tensor_is_checked_as_a_numpy_array_before_the_core_sees_it(add_session):
    a, b = operands()
    with raises(jb.InputError, "input 'a'", "expected a C-contiguous tensor", "(1, 3)", "(3, 2)"):
        add_session.run({"a": OnDevice(np.zeros((2, 3), np.float32).T), "b": b})
    with raises(jb.InputTypeError, "input 'a'", "dtype complex64 is not supported"):
        add_session.run({"a": OnDevice(np.zeros((2, 3), np.complex64)), "b": b})
    c = np.zeros_like(a)
    c.setflags(write=False)
    with raises(jb.InputError, "output 'c'", "read-only"):
        add_session.run({"a": a, "b": b}, out={"c": OnDevice(c)})


def test_pinned_host_memory_is_host_memory_to_every_session(add_session):
    a, b = operands()
    c = np.full_like(a, np.nan)
    pinned_a, pinned_c = Pinned(a), Pinned(c)
    assert add_session.run({"a": pinned_a, "b": b}, out={"c": pinned_c})["c"] is pinned_c  # written in place
    np.testing.assert_array_equal(c, a + b)
    assert (pinned_a.exports, pinned_c.exports) == (1, 1)
    np.testing.assert_array_equal(add_session.run({"a": Pinned(a), "b": Pinned(b)})["c"], a + b)


def test_an_object_with_only_the_cuda_array_interface_is_refused_saying_why(add_session):
    a, b = operands()
    for inputs, out, what in [({"a": CudaArray(), "b": b}, None, "input 'a'"),
                              ({"a": a, "b": b}, {"c": CudaArray()}, "output 'c'")]:
        with raises(jb.InputError, what, "__cuda_array_interface__ only", "which GPU", "DLPack"):
            add_session.run(inputs, out=out)


def test_an_unknown_device_is_named_by_its_dlpack_type(add_session):
    class OnVulkan(OnDevice):
        def __dlpack_device__(self):
            return (7, 0)

    class OnFutureDevice(OnDevice):
        def __dlpack_device__(self):
            return (99, 3)

    _, b = operands()
    with raises(jb.InputError, "input 'a'", "the OnVulkan is on vulkan:0"):
        add_session.run({"a": OnVulkan(), "b": b})
    with raises(jb.InputError, "input 'a'", "on DLPack device type 99:3"):
        add_session.run({"a": OnFutureDevice(), "b": b})


def test_a_failed_or_foreign_export_is_a_clear_error(add_session):
    a, b = operands()

    class Refuses(Exporter):
        def __dlpack__(self, **kwargs):
            raise BufferError("cannot export this one")

    class NotACapsule(Exporter):
        def __dlpack__(self, **kwargs):
            return object()

    class NoDevice(OnDevice):
        def __dlpack_device__(self):
            return "cpu"

    with raises(jb.InputTypeError, "input 'a'", "the NoDevice's __dlpack_device__() gave no (device type, device id)"):
        add_session.run({"a": NoDevice(), "b": b})
    with raises(jb.InputError, "input 'a'", "the Refuses refused its DLPack export", "cannot export this one"):
        add_session.run({"a": Refuses(a), "b": b})
    with raises(jb.InputTypeError, "input 'a'", "NotACapsule.__dlpack__() returned a object", "DLPack capsule"):
        add_session.run({"a": NotACapsule(a), "b": b})
    with raises(jb.InputTypeError, "input 'a'", "expected a numpy array, a buffer-protocol object or a DLPack",
                "got str"):
        add_session.run({"a": "not an array", "b": b})


@pytest.mark.parametrize("shape", [(0, 3), (64, 3)])
def test_dlpack_batches_of_any_size_run_like_numpy(model_path, shape):
    s = jb.Session(model_path("identity_f32_any", onnx_models.identity, np.float32, None))
    x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    y = np.full_like(x, np.nan)
    assert s.run({"x": Exporter(x)}, out={"y": Exporter(y)})["y"].array is y
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(s.run({"x": Exporter(x)})["y"], x)
    scalar = np.array(2.5, np.float32)
    np.testing.assert_array_equal(s.run({"x": Exporter(scalar)})["y"], scalar)
