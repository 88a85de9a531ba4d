"""`juno_bridge.empty`: numpy arrays whose data start on a 64-byte boundary.

TensorFlow (and vectorised kernels generally) keep a caller's buffer only when it is 64-byte aligned;
numpy guarantees 16 bytes. One slack allocation and a view at the right offset give the alignment with
no copy later.
"""
from __future__ import annotations

import numpy as np

ALIGNMENT = 64


def empty(shape, dtype=np.float32, *, alignment: int = ALIGNMENT) -> np.ndarray:
    """A C-contiguous, uninitialised array of `shape` and `dtype` whose data are `alignment`-byte aligned.
    The array keeps its backing allocation alive (through .base)."""
    if alignment <= 0 or alignment & (alignment - 1):
        raise ValueError(f"alignment must be a power of two, got {alignment}")
    dtype = np.dtype(dtype)
    shape = (shape,) if np.ndim(shape) == 0 else tuple(shape)
    count = int(np.prod(shape, dtype=np.int64))
    nbytes = count * dtype.itemsize
    raw = np.empty(nbytes + alignment, dtype=np.uint8)
    offset = -raw.ctypes.data % alignment
    # The ndarray constructor, not a slice: numpy may move a zero-size slice's data pointer.
    return np.ndarray(shape, dtype, buffer=raw, offset=offset)
