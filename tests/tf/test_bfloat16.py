"""DT_BFLOAT16 through the tf plugin: ml_dtypes.bfloat16 arrays in and out of a SavedModel, equal bitwise to
TensorFlow's own Python API, aligned inputs read in place; uint16 bits by option."""
import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from helpers import tf_models as tm
from helpers.tf_models import tf

import juno_bridge as jb

BF16 = np.dtype(ml_dtypes.bfloat16)


class Mixed(tf.Module):
    """A bfloat16 and a float32 input; bfloat16 and float32 outputs."""

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.bfloat16, name="x"),
                                  tf.TensorSpec([None, 3], tf.float32, name="f")])
    def serve(self, x, f):
        return {"y": x * tf.constant(2, tf.bfloat16), "h": tf.cast(f, tf.bfloat16), "g": f * 2}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    m = Mixed()
    path = tmp_path_factory.mktemp("tf_bfloat16") / "mixed.savedmodel"
    tf.saved_model.save(m, str(path), signatures={"serving_default": m.serve})
    return path, m


@pytest.fixture(scope="module")
def session(model):
    return jb.Session(model[0])


def test_bfloat16_is_in_the_signature(session):
    # in the order serve(x, f) defines them (not by name)
    assert [(i.name, i.dtype, i.type_name) for i in session.inputs()] == [("x", BF16, "tensor(bfloat16)"),
                                                                          ("f", np.float32, "tensor(float)")]
    assert {o.name: o.dtype for o in session.outputs()} == {"g": np.float32, "h": BF16, "y": BF16}


@settings(max_examples=25, deadline=None)
@given(data=st.data(), batch=st.integers(0, 9))
def test_bfloat16_equals_tensorflows_python_api_bitwise(model, session, data, batch):
    # Any bits but subnormals (NaN, infinities, -0.0), and no operation that makes one: TensorFlow's Python API
    # flushes subnormals to zero on its thread, its C API on ours does not, whatever the dtype.
    bits = data.draw(hnp.arrays(np.uint16, (batch, 3)))
    x = tm.aligned(np.where(bits & 0x7F80 == 0, bits & 0x8000, bits).astype(np.uint16).view(BF16))
    f = tm.aligned(data.draw(hnp.arrays(np.float32, (batch, 3), elements=st.floats(width=32, allow_subnormal=False))))
    got = session.run({"x": x, "f": f})
    want = {k: v.numpy() for k, v in model[1].serve(tf.constant(x), tf.constant(f)).items()}
    assert session._stats()["input_addresses"] == [x.ctypes.data, f.ctypes.data] or batch == 0  # model order
    for name, value in got.items():
        assert value.dtype == want[name].dtype
        np.testing.assert_array_equal(value.view(np.uint16 if value.dtype == BF16 else np.uint32),
                                      want[name].view(np.uint16 if value.dtype == BF16 else np.uint32))


def test_uint16_bits_pass_only_with_the_option(model):
    x = tm.aligned(np.arange(6, dtype=np.float32).reshape(2, 3).astype(BF16))
    f = tm.aligned(np.zeros((2, 3), np.float32))
    with pytest.raises(jb.InputTypeError, match="input 'x': expected dtype bfloat16, got uint16.*bfloat16_as_uint16"):
        jb.Session(model[0]).run({"x": x.view(np.uint16), "f": f})
    got = jb.Session(model[0], bfloat16_as_uint16=True).run({"x": x.view(np.uint16), "f": f})
    assert got["y"].dtype == got["h"].dtype == np.uint16
    np.testing.assert_array_equal(got["y"], (2 * x.astype(np.float32)).astype(BF16).view(np.uint16))
