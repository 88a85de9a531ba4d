"""DLPack objects on devices this machine does not have, for the device paths' tests: a numpy array's own
export with the device in its capsule rewritten. The memory stays host memory, which the bridge must never
read as another device's (it hands it on as a view of that device, or refuses it)."""
from __future__ import annotations

import ctypes

import numpy as np


def relabel(capsule, kind: int, index: int):
    """Rewrites the device of an unused DLPack capsule: DLTensor's DLDevice lies right after its data pointer,
    and the DLTensor at the start of a "dltensor" capsule's struct, after version, manager_ctx, deleter and
    flags in a "dltensor_versioned" one. Host memory then passes for another device's, so device paths are
    tested without one; the bridge must never read it."""
    name = ctypes.pythonapi.PyCapsule_GetName
    name.restype, name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    which = name(capsule)
    tensor = get(capsule, which) + (32 if which == b"dltensor_versioned" else 0)
    device = tensor + ctypes.sizeof(ctypes.c_void_p)
    ctypes.c_int32.from_address(device).value = kind
    ctypes.c_int32.from_address(device + 4).value = index
    return capsule


class OnDevice:
    """A DLPack object on CUDA device 1 (kDLCUDA = 2; or the kind and index given): a numpy array's export
    relabelled (relabel)."""

    kind, index = 2, 1

    def __init__(self, array=None, kind=None, index=None):
        self.array = np.zeros((2, 3), np.float32) if array is None else array
        self.kind = self.kind if kind is None else kind
        self.index = self.index if index is None else index
        self.exports = 0

    def __dlpack_device__(self):
        return (self.kind, self.index)

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        self.exports += 1
        return relabel(self.array.__dlpack__(max_version=max_version, copy=copy), self.kind, self.index)


class Pinned(OnDevice):
    """Pinned host memory (DLPack's cuda_host, kDLCUDAHost = 3), as cudaMallocHost gives."""

    kind, index = 3, 0
