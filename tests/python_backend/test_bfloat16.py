"""bfloat16 through the Python-algorithm backend: the callable sees ml_dtypes.bfloat16 views of the caller's
memory, and writes bfloat16 outputs in place; uint16 bits by option."""
import ml_dtypes
import numpy as np
import pytest

from helpers import pyalgos

import juno_bridge as jb

BF16 = np.dtype(ml_dtypes.bfloat16)
MODEL = "python:helpers.pyalgos:bfloat16_double"


def test_the_callable_gets_bfloat16_views_of_the_callers_memory():
    s = jb.Session(MODEL)
    assert [(i.name, i.dtype, i.type_name) for i in s.inputs()] == [("x", BF16, "tensor(bfloat16)")]
    x = np.array([1.5, -2, 3e10, np.inf], BF16)
    y = np.zeros(4, BF16)
    got = s.run({"x": x}, out={"y": y})
    assert got["y"] is y and pyalgos.seen["x"] == (BF16, x.ctypes.data) and pyalgos.seen["y"] == (BF16, y.ctypes.data)
    np.testing.assert_array_equal(y.view(np.uint16), (x * 2).view(np.uint16))
    np.testing.assert_array_equal(got["f"], x.astype(np.float32))
    allocated = s.run({"x": x})["y"]
    assert allocated.dtype == BF16
    np.testing.assert_array_equal(allocated.view(np.uint16), (x * 2).view(np.uint16))


def test_uint16_bits_pass_only_with_the_option():
    x = np.array([1, 2, 3], BF16)
    with pytest.raises(jb.InputTypeError, match="input 'x': expected dtype bfloat16, got uint16.*bfloat16_as_uint16"):
        jb.Session(MODEL).run({"x": x.view(np.uint16)})
    got = jb.Session(MODEL, bfloat16_as_uint16=True).run({"x": x.view(np.uint16)})
    assert got["y"].dtype == np.uint16 and pyalgos.seen["x"] == (BF16, x.ctypes.data)
    np.testing.assert_array_equal(got["y"], (x * 2).view(np.uint16))
