"""Zero-copy through the torch plugin: torch reads the caller's memory (pointer identity reported by
the plugin), in-place outputs land in the caller's buffer, handed-over outputs are torch's own."""
import numpy as np
import pytest

from helpers import torch_models as tm

import juno_bridge as jb


@pytest.fixture(scope="module", params=[".pt2", ".pt"])
def session(request):
    return jb.Session(tm.tiny(request.param))


def test_torch_reads_the_callers_input_memory(session):
    before = session._stats()["tensors_wrapped"]
    for batch in (1, 7, 64):
        x = np.random.default_rng(batch).standard_normal((batch, 8)).astype(np.float32)
        session.run({"x": x})
        stats = session._stats()
        assert stats["input_addresses"] == [x.ctypes.data]
    assert stats["tensors_wrapped"] == before + 3


def test_in_place_output_writes_the_callers_buffer(session):
    x = np.random.default_rng(1).standard_normal((5, 8)).astype(np.float32)
    y = np.full((5, 4), np.nan, np.float32)
    result = session.run({"x": x}, out={"y": y})
    assert np.shares_memory(result["y"], y)
    np.testing.assert_allclose(y, session.run({"x": x})["y"], rtol=0, atol=0)
    assert not np.isnan(y).any()


def test_handed_over_output_is_the_backends_memory_not_a_copy(session):
    y = session.run({"x": np.ones((3, 8), np.float32)})["y"]
    assert y.base is not None and y.base.address == y.ctypes.data


def test_handed_over_output_never_aliases_the_callers_input():
    # TorchScript's flatten returns a view of the input; the plugin must not hand that memory back.
    s = jb.Session(tm.flatten_view_pt())
    x = np.arange(30, dtype=np.float32).reshape(3, 2, 5)
    out = s.run({s.inputs()[0].name: x})[s.outputs()[0].name]
    np.testing.assert_array_equal(out, x.reshape(3, 10))
    assert not np.shares_memory(out, x)


def test_session_empty_on_the_cpu_is_host_memory_read_in_place(session):
    # On the CPU the plugin has no memory of its own to offer (tests/torch/test_cuda.py: pinned on a GPU).
    x = session.empty((3, 8))
    assert x.base.device == "cpu" and x.ctypes.data % 64 == 0
    x[...] = np.arange(24).reshape(3, 8)
    y = session.run({"x": x})["y"]
    assert session._stats()["input_addresses"] == [x.ctypes.data]
    np.testing.assert_array_equal(y, session.run({"x": np.array(x)})["y"])
