# cython: language_level=3, boundscheck=False, wraparound=False, embedsignature=True
"""Thin wrappers over the C++ core: numpy arrays <-> TensorView, Status -> exceptions, GIL release.

Everything here is glue a C++ caller does not need: the C++ Session does the checks and the work.
What juno_bridge._hits shares of it is declared in bridge/juno_bridge/_core.pxd.

This file holds the module's imports and what the module-level functions need; the rest is included from
the .pxi parts beside it, one per responsibility (as pyarrow's lib.pyx): _logging, _arrays (dtypes and
numpy views), _foreign (other array objects: buffer protocol, DLPack), _calls (a call's views, the call
layouts), _session, _binding, _async (run_async's completions), _runtime (jb.Runtime).
"""
cimport cython
from cpython.buffer cimport PyObject_CheckBuffer
from cpython.dict cimport PyDict_Next
from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_IsValid, PyCapsule_New, PyCapsule_SetName
from cpython.ref cimport Py_DECREF, Py_INCREF, PyObject
from cython.operator cimport dereference as deref
from libc.stdint cimport int32_t, int64_t, uintptr_t
from libc.stdlib cimport calloc, free
from libcpp.memory cimport shared_ptr, unique_ptr
from libcpp.string cimport string
from libcpp.vector cimport vector

cimport numpy as cnp

from libjuno_bridge cimport backends as c_backends, backend_plugin_path, BackendInfo
from libjuno_bridge cimport (JB_MAX_RANK, CSession, CTensorInfo, DType, ModelMetadata, OnnxRuntimeInfo,
                             CallViews, SessionOptions, Status, Tensor, get_onnxruntime_info, jb_tensor_view,
                             jb_version, open_session, open_session_bytes, run_session, run_session_async,
                             free_ended_thread_states,
                             session_metadata, session_signature, session_stats,
                             session_empty as c_session_empty, set_option, SessionStats,
                             CRuntime, RuntimeTask, make_runtime, make_runtime_with_executor, run_task,
                             open_backend_count as c_open_backend_count)
from libjuno_bridge cimport (JB_DTYPE_BFLOAT16, JB_DTYPE_BOOL, JB_DTYPE_FLOAT16, JB_DTYPE_FLOAT32, JB_DTYPE_FLOAT64,
                             JB_DTYPE_INT8, JB_DTYPE_INT16, JB_DTYPE_INT32, JB_DTYPE_INT64, JB_DTYPE_UINT8,
                             JB_DTYPE_UINT16, JB_DTYPE_UINT32, JB_DTYPE_UINT64)
from libjuno_bridge cimport JB_DEVICE_CPU, JB_DEVICE_CUDA, JB_DEVICE_CUDA_PINNED
from libjuno_bridge cimport jb_get_log_level, jb_set_log_callback, jb_set_log_level
from libdlpack cimport (DLPACK_FLAG_BITMASK_READ_ONLY, DLPACK_MAJOR_VERSION, DLManagedTensor,
                       DLManagedTensorVersioned, DLTensor, kDLCPU, kDLCUDA, kDLCUDAHost)
import atexit
import concurrent.futures
import importlib
import logging
import operator
import os
import threading

import ml_dtypes
import numpy as np

from juno_bridge.errors import InputError, InputTypeError, InvalidArgumentError, error_class
from juno_bridge.tensor_info import TensorInfo

cnp.import_array()


cdef int raise_status(Status& status) except -1:
    raise error_class(status.code)(status.message.decode("utf-8", "replace"), status.backend_code)


include "_logging.pxi"
include "_arrays.pxi"
include "_foreign.pxi"
include "_exports.pxi"
include "_calls.pxi"
include "_session.pxi"
include "_binding.pxi"
include "_async.pxi"
include "_runtime.pxi"


def onnxruntime_info(library=None):
    """Facts about an ONNX Runtime library: the default one, or the one at ``library``."""
    cdef OnnxRuntimeInfo info
    cdef Status status
    cdef string path = os.fspath(library).encode() if library is not None else b""
    if get_onnxruntime_info(path, &info, &status):
        raise_status(status)
    return {"path": info.path.decode(), "version": info.version.decode(),
            "api_version": info.api_version, "build_info": info.build_info.decode(),
            "providers": [p.decode() for p in info.providers]}


def backends():
    """The core's backend registry, one dict per backend (juno_bridge.backends() wraps it)."""
    cdef const vector[BackendInfo]* table = &c_backends()
    cdef size_t i
    found = []
    for i in range(table.size()):
        b = &table.at(i)
        found.append({"name": b.name.decode(), "aliases": tuple(a.decode() for a in b.aliases),
                      "prefixes": tuple(p.decode() for p in b.prefixes),
                      "suffixes": tuple(x.decode() for x in b.suffixes),
                      "directory_marker": b.directory_marker.decode(), "plugin": b.plugin.decode(),
                      "extra": b.extra.decode(), "description": b.description.decode(),
                      "plugin_path": backend_plugin_path(b[0]).decode()})
    return found


def open_backend_count():
    """Backend sessions open in the process now; Sessions sharing one (shared=True) count once."""
    return c_open_backend_count()


def version():
    """The version of the core library this module is linked to."""
    return jb_version().decode()
