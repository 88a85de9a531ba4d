"""torch CPU tensors (DLPack) as inputs and out= buffers of Session.run, bind and run_async: read and written
where they lie (pointer identity), bfloat16 included, and checked exactly as the numpy array of the same memory
is: a tensor is accepted or refused, with the same message, exactly when that array would be."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from helpers import onnx_models
from helpers import torch_models as tm
from helpers.reference import BFLOAT16, assert_bitwise_equal
from helpers.torch_models import torch

import juno_bridge as jb

# Every torch dtype the bridge takes, with the numpy dtype of the same bits ...
SUPPORTED = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16,
             torch.bfloat16: BFLOAT16, torch.int8: np.int8, torch.int16: np.int16, torch.int32: np.int32,
             torch.int64: np.int64, torch.uint8: np.uint8, torch.uint16: np.uint16, torch.uint32: np.uint32,
             torch.uint64: np.uint64, torch.bool: np.bool_}
# ... and some it refuses, which numpy (with ml_dtypes) also holds.
REFUSED = {torch.complex64: np.complex64, torch.complex128: np.complex128,
           torch.float8_e4m3fn: ml_dtypes.float8_e4m3fn, torch.float8_e5m2: ml_dtypes.float8_e5m2}
DTYPES = {**SUPPORTED, **REFUSED}
# The unsigned integer type of each item size: numpy views torch's memory through it where torch has no
# numpy conversion (bfloat16, float8).
BITS = {1: torch.uint8, 2: torch.int16}


def as_numpy(t):
    """The numpy array over the same memory as `t`: same address, strides and bits."""
    dtype = np.dtype(DTYPES[t.dtype])
    if t.dtype in (torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2):
        return t.view(BITS[dtype.itemsize]).numpy().view(dtype)
    return t.numpy()


@pytest.fixture(scope="module")
def sessions(model_path):
    """An identity model of unknown rank per supported dtype, made on first use (float32 for the others)."""
    made = {}

    def get(dtype):
        dtype = dtype if dtype in SUPPORTED else torch.float32
        if dtype not in made:
            numpy_dtype = np.dtype(SUPPORTED[dtype])
            made[dtype] = jb.Session(model_path(f"identity_any_rank_{numpy_dtype}", onnx_models.identity,
                                                numpy_dtype, None), intra_op_threads=1)
        return made[dtype]

    return get


def test_torch_inputs_are_read_where_they_lie_and_out_tensors_hold_the_results(add_session):
    a = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    b = torch.full((2, 3), 0.5)
    c = torch.full((2, 3), float("nan"))
    out = {"c": c}
    assert add_session.run({"a": a, "b": b}, out=out) is out and out["c"] is c
    assert add_session._stats()["input_addresses"] == [a.data_ptr(), b.data_ptr()]
    assert torch.equal(c, a + b)
    # By position, and an offset view into a larger tensor (its data pointer, not its storage's).
    big = torch.arange(12, dtype=torch.float32).reshape(4, 3)
    add_session.run([big[2:], b], out=out)
    assert add_session._stats()["input_addresses"] == [big[2:].data_ptr(), b.data_ptr()]
    assert big[2:].data_ptr() != big.data_ptr()
    assert torch.equal(c, big[2:] + b)


def test_torch_buffers_of_bind_and_run_async_are_the_callers_tensors(add_session):
    a, b, c = torch.ones(2, 3), torch.full((2, 3), 2.0), torch.zeros(2, 3)
    binding = add_session.bind({"a": a, "b": b}, out={"c": c})
    for value in (5.0, -1.0):
        a.fill_(value)  # refilled in place between events
        assert binding.run()["c"] is c
        assert torch.equal(c, torch.full((2, 3), value + 2.0))
    assert add_session._stats()["input_addresses"] == [a.data_ptr(), b.data_ptr()]
    futures = [add_session.run_async({"a": a * i, "b": b}, out={"c": torch.empty(2, 3)}) for i in range(8)]
    for i, future in enumerate(futures):
        result = future.result()
        assert torch.equal(result["c"], a * i + b)
    c.zero_()
    assert add_session.run_async({"a": a, "b": b}, out={"c": c}).result()["c"] is c
    assert torch.equal(c, a + b)


def test_bfloat16_tensors_pass_without_a_copy_bitwise(sessions):
    s = sessions(torch.bfloat16)
    x = torch.randn(5, 7).to(torch.bfloat16)
    x[0, :3] = torch.tensor([float("inf"), float("nan"), -0.0])
    y = torch.empty_like(x)
    assert s.run({"x": x}, out={"y": y})["y"] is y
    assert s._stats()["input_addresses"] == [x.data_ptr()]
    assert torch.equal(y.view(torch.int16), x.view(torch.int16))
    allocated = s.run({"x": x})["y"]
    assert allocated.dtype == BFLOAT16
    assert_bitwise_equal(allocated, as_numpy(x), "y")


def test_a_transposed_tensor_is_refused_as_its_numpy_array_is_never_copied(add_session):
    a = torch.arange(6, dtype=torch.float32).reshape(3, 2).T
    b = torch.ones(2, 3)
    with pytest.raises(jb.InputError, match="C-contiguous") as from_torch:
        add_session.run({"a": a, "b": b})
    with pytest.raises(jb.InputError) as from_numpy:
        add_session.run({"a": a.numpy(), "b": b})
    assert str(from_torch.value) == str(from_numpy.value)
    with pytest.raises(jb.InputError, match="output 'c': expected a C-contiguous array"):
        add_session.run({"a": b, "b": b}, out={"c": torch.empty(3, 2).T})


def test_a_tensor_that_requires_grad_is_refused_with_torchs_reason(add_session):
    a = torch.ones(2, 3, requires_grad=True)
    with pytest.raises(jb.InputError, match="input 'a': the Tensor refused its DLPack export.*detach"):
        add_session.run({"a": a, "b": torch.ones(2, 3)})
    add_session.run({"a": a.detach(), "b": torch.ones(2, 3)})


def test_torch_tensors_into_a_torchscript_model_are_read_where_they_lie():
    s = jb.Session(tm.tiny(".pt"))
    x = torch.randn(6, 8)
    y = torch.full((6, 4), float("nan"))
    assert s.run({"x": x}, out={"y": y})["y"] is y
    assert s._stats()["input_addresses"] == [x.data_ptr()]
    torch.testing.assert_close(y, tm.TINY(x).detach(), rtol=1e-6, atol=1e-6)


FORMS = ["contiguous", "offset", "transposed", "strided", "expanded"]


def tensor(dtype, shape, form, seed):
    """A torch tensor of `shape` with any bits of `dtype` (0/1 for bool), laid out as `form` says."""
    base_shape = {"offset": (shape[0] + 1, *shape[1:]), "transposed": shape[::-1],
                  "strided": (*shape[:-1], 2 * shape[-1]), "expanded": (1, *shape[1:])}.get(form, shape)
    itemsize = np.dtype(DTYPES[dtype]).itemsize
    raw = np.random.default_rng(seed).integers(0, 256, int(np.prod(base_shape)) * itemsize, dtype=np.uint8)
    if dtype == torch.bool:
        raw %= 2
    base = torch.from_numpy(raw).view(dtype).reshape(base_shape) if raw.size else torch.empty(base_shape, dtype=dtype)
    if form == "offset":
        return base[1:]
    if form == "transposed":
        return base.permute(*reversed(range(len(shape))))
    if form == "strided":
        return base[..., ::2]
    if form == "expanded":
        return base.expand(shape)
    return base


def outcome(session, x, out=None):
    """What a run gives: the error (type and message), or the output's bits."""
    try:
        result = session.run({"x": x}, out=None if out is None else {"y": out})
    except jb.Error as error:
        return type(error), str(error)
    y = result["y"]
    if out is not None:
        assert y is out
    return "ran", np.asarray(as_numpy(y) if isinstance(y, torch.Tensor) else y).tobytes()


@given(dtype=st.sampled_from(list(DTYPES)), batch=st.integers(0, 64),
       rest=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5), form=st.sampled_from(FORMS),
       seed=st.integers(0, 2**32 - 1))
def test_a_torch_tensor_runs_or_is_refused_exactly_as_the_numpy_array_of_its_memory(sessions, dtype, batch, rest,
                                                                                      form, seed):
    session = sessions(dtype)
    shape = (batch, *rest)
    # As an input.
    x = tensor(dtype, shape, form, seed)
    got = outcome(session, x)
    assert got == outcome(session, as_numpy(x))
    event(f"input: {'ran' if got[0] == 'ran' else got[0].__name__}")  # --hypothesis-show-statistics: both seen
    if got[0] == "ran":
        assert got[1] == np.ascontiguousarray(as_numpy(x)).tobytes()  # the identity's output: the input's bits
        if x.numel():
            assert session._stats()["input_addresses"] == [x.data_ptr()]
    # As out=, from a C-contiguous input of the same dtype: the torch tensor and a numpy array of the same
    # layout (other memory) take the same bits, or are refused with the same message.
    source = as_numpy(tensor(dtype, shape, "contiguous", seed + 1))
    torch_out, numpy_out = tensor(dtype, shape, form, seed + 2), as_numpy(tensor(dtype, shape, form, seed + 2))
    got = outcome(session, source, torch_out)
    assert got == outcome(session, source, numpy_out)
    event(f"out=: {'ran' if got[0] == 'ran' else got[0].__name__}")
    if got[0] == "ran":
        assert got[1] == source.tobytes()
