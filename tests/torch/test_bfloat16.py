"""torch.bfloat16 through the torch plugin: ml_dtypes.bfloat16 arrays in and out of .pt and .pt2 models,
equal bitwise to the module in Python torch, read where the caller holds them; uint16 bits by option."""
import functools

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from helpers import torch_models as tm
from helpers.torch_models import torch

import juno_bridge as jb

BF16 = np.dtype(ml_dtypes.bfloat16)
PROPERTY = settings(max_examples=15, deadline=None)


class Mixed(torch.nn.Module):
    """A bfloat16 and a float32 input; bfloat16 and float32 outputs. Each result is rounded once, so eager
    torch and AOTInductor's fused kernels (which compute bfloat16 in float32) agree bitwise."""

    def forward(self, x, f):
        return x * 2, f.to(torch.bfloat16), x.float() - f


@functools.cache
def mixed(suffix: str):
    examples = (torch.ones(3, 4, dtype=torch.bfloat16), torch.ones(3, 4))
    return tm.export_torch(Mixed().eval(), examples, tm._DIR / f"bfloat16_mixed{suffix}",
                           input_names=["x", "f"], output_names=["y", "h", "g"])


def to_torch(a: np.ndarray) -> torch.Tensor:
    """The array as a torch tensor of the same memory (torch.from_numpy knows no ml_dtypes)."""
    return torch.from_numpy(a.view(np.uint16)).view(torch.bfloat16) if a.dtype == BF16 else torch.from_numpy(a)


def to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.view(torch.uint16).numpy().view(BF16) if t.dtype == torch.bfloat16 else t.numpy()


@pytest.fixture(scope="module", params=[".pt", ".pt2"])
def suffix(request):
    return request.param


@pytest.fixture(scope="module")
def session(suffix):
    return jb.Session(mixed(suffix))


def test_bfloat16_is_in_the_signature(session):
    assert [(i.name, i.dtype, i.type_name) for i in session.inputs()] == [("x", BF16, "tensor(bfloat16)"),
                                                                          ("f", np.float32, "tensor(float)")]
    assert [o.dtype for o in session.outputs()] == [BF16, BF16, np.float32]


@PROPERTY
@given(data=st.data(), batch=st.integers(1, 9))
def test_bfloat16_equals_the_module_in_python_torch(session, data, batch):
    finite = st.floats(-2.0**100, 2.0**100, width=32)
    x = data.draw(hnp.arrays(np.float32, (batch, 4), elements=finite)).astype(BF16)
    f = data.draw(hnp.arrays(np.float32, (batch, 4), elements=finite))
    got = session.run({"x": x, "f": f})
    with torch.no_grad():
        want = dict(zip(["y", "h", "g"], (to_numpy(t) for t in Mixed()(to_torch(x), to_torch(f)))))
    assert [v.dtype for v in got.values()] == [BF16, BF16, np.float32]
    for name in ("y", "h"):
        np.testing.assert_array_equal(got[name].view(np.uint16), want[name].view(np.uint16))
    np.testing.assert_array_equal(got["g"], want["g"])


def test_bfloat16_input_is_read_in_place_and_out_is_written_in_place(session):
    x = np.arange(12, dtype=np.float32).reshape(3, 4).astype(BF16)
    f = np.ones((3, 4), np.float32)
    y = np.zeros((3, 4), BF16)
    result = session.run({"x": x, "f": f}, out={"y": y}, outputs=["y"])
    assert session._stats()["input_addresses"] == [x.ctypes.data, f.ctypes.data]
    assert result["y"] is y
    np.testing.assert_array_equal(y.astype(np.float32), 2 * np.arange(12).reshape(3, 4))
    handed = session.run({"x": x, "f": f})["y"]
    assert handed.dtype == BF16 and handed.base.address == handed.ctypes.data


def test_uint16_bits_pass_only_with_the_option(suffix):
    x = np.arange(12, dtype=np.float32).reshape(3, 4).astype(BF16)
    f = np.zeros((3, 4), np.float32)
    with pytest.raises(jb.InputTypeError, match="input 'x': expected dtype bfloat16, got uint16.*bfloat16_as_uint16"):
        jb.Session(mixed(suffix)).run({"x": x.view(np.uint16), "f": f})
    got = jb.Session(mixed(suffix), bfloat16_as_uint16=True).run({"x": x.view(np.uint16), "f": f})["y"]
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, (2 * x.astype(np.float32)).astype(BF16).view(np.uint16))
