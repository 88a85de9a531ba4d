"""The element types juno-bridge moves: numpy dtypes and the C ABI's jb_dtype codes (ONNX numbering).

One table, built in juno_bridge._core from the C header's names; this module presents it. bfloat16 (code 16)
is ml_dtypes.bfloat16, the numpy type onnx, TensorFlow and JAX use for it.

    >>> jb_code(np.float32), numpy_dtype(7)
    (1, dtype('int64'))
"""
from __future__ import annotations

import numpy as np

from juno_bridge._core import NUMPY_DTYPES, SUPPORTED_DTYPES

CODES = {dtype: code for code, dtype in NUMPY_DTYPES.items()}  # numpy dtype -> jb code


def jb_code(dtype) -> int | None:
    """The jb code of a numpy dtype (or anything np.dtype takes); None when juno-bridge does not move it."""
    return CODES.get(np.dtype(dtype))


def numpy_dtype(code: int) -> np.dtype | None:
    """The numpy dtype of a jb code; None for an unknown code."""
    return NUMPY_DTYPES.get(code)


__all__ = ["CODES", "NUMPY_DTYPES", "SUPPORTED_DTYPES", "jb_code", "numpy_dtype"]
