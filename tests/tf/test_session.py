"""SavedModels through the tf plugin: the serving signature as inputs()/outputs(), results equal to
TensorFlow's own Python API, and the same network through the ONNX backend within float tolerance."""
import threading

import numpy as np
from hypothesis import given, strategies as st

from helpers import tf_models as tm
from helpers.tf_models import tf

import juno_bridge as jb


def test_tf_saved_model_save_signature_is_inputs_and_outputs():
    s = jb.Session(tm.tiny())
    assert [(i.name, i.dtype, i.shape) for i in s.inputs()] == [("x", np.float32, (-1, 8))]
    assert [(o.name, o.dtype, o.shape) for o in s.outputs()] == [("y", np.float32, (-1, 4))]
    md = s.metadata()
    assert md["producer_name"] == "tensorflow"
    assert md["custom"]["signature"] == "serving_default"
    assert md["custom"]["tensor.x"] == "serving_default_x:0"
    assert md["custom"]["tensorflow_version"] == tf.__version__


def test_keras_export_names_its_outputs_output_0_and_is_found_without_a_suffix():
    _, path, _ = tm.keras_mlp()
    assert not str(path).endswith(".savedmodel") and (path / "saved_model.pb").exists()
    s = jb.Session(path)
    assert [(i.name, i.shape) for i in s.inputs()] == [("x", (-1, 8))]
    assert [(o.name, o.shape) for o in s.outputs()] == [("output_0", (-1, 4))]


def test_another_signature_is_chosen_by_config_and_its_outputs_come_in_key_order():
    s = jb.Session(tm.tiny(), config={"signature": "halves"})
    assert [o.name for o in s.outputs()] == ["half", "sum"]
    x = tm.aligned(np.arange(16, dtype=np.float32).reshape(2, 8))
    out = s.run({"x": x}, outputs=["sum"])
    assert list(out) == ["sum"]
    np.testing.assert_array_equal(out["sum"], x.sum(axis=1))


@given(batch=st.integers(1, 300), seed=st.integers(0, 2**32 - 1))
def test_tiny_outputs_equal_tensorflow_python_for_any_batch(batch, seed):
    s = _session(tm.tiny())
    x = tm.aligned(np.random.default_rng(seed).standard_normal((batch, 8)).astype(np.float32))
    want = tm.affine_module().serve(tf.constant(x))["y"].numpy()
    # Equal up to rounding: the C API's graph rewrites may fuse MatMul and BiasAdd where eager does not.
    np.testing.assert_allclose(s.run({"x": x})["y"], want, rtol=1e-6, atol=1e-6)


@given(batch=st.integers(1, 300), seed=st.integers(0, 2**32 - 1))
def test_keras_outputs_equal_keras_and_agree_with_the_onnx_export(batch, seed):
    model, path, onnx_path = tm.keras_mlp()
    x = tm.aligned(np.random.default_rng(seed).standard_normal((batch, 8)).astype(np.float32))
    y = np.empty((batch, 4), np.float32)
    _session(path).run({"x": x}, out={"output_0": y})
    np.testing.assert_allclose(y, model.predict_on_batch(x), rtol=1e-6, atol=1e-6)
    via_onnx = _session(onnx_path).run({"x": x})["output_0"]
    np.testing.assert_allclose(y, via_onnx, rtol=1e-5, atol=1e-5)


def test_juno_sized_batch_equals_tensorflow_python():
    s = jb.Session(tm.juno(), intra_op_threads=1)
    x = tm.aligned(np.random.default_rng(3).standard_normal((4, 2, tm.JUNO_PMTS)).astype(np.float32))
    want = tm.juno_module().serve(tf.constant(x))["y"].numpy()
    np.testing.assert_allclose(s.run({"pmt": x})["y"], want, rtol=1e-5, atol=1e-5)


def test_thread_options_give_the_same_results_and_one_session_serves_two_threads():
    x = tm.aligned(np.random.default_rng(4).standard_normal((64, 8)).astype(np.float32))
    want = jb.Session(tm.tiny()).run({"x": x})["y"]
    s = jb.Session(tm.tiny(), intra_op_threads=2, inter_op_threads=2)
    np.testing.assert_array_equal(s.run({"x": x})["y"], want)
    results, errors = [], []

    def work():
        try:
            for _ in range(200):
                results.append(s.run({"x": x})["y"])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 400
    for r in results:
        np.testing.assert_array_equal(r, want)


_SESSIONS = {}


def _session(path):
    # Hypothesis calls a test many times: one session per model, as a framework would keep it.
    if path not in _SESSIONS:
        _SESSIONS[path] = jb.Session(path, intra_op_threads=1)
    return _SESSIONS[path]


@given(batch=st.integers(0, 20), seed=st.integers(0, 2**32 - 1))
def test_every_dtype_passes_through_unchanged(batch, seed):
    s = _session(tm.all_dtypes())
    assert [i.name for i in s.inputs()] == tm.DTYPES  # the order of the function's arguments, not of the keys
    rng = np.random.default_rng(seed)
    feed = {}
    for d in tm.DTYPES:
        values = rng.integers(0, 100, (batch, 3)) if d != "bool" else rng.integers(0, 2, (batch, 3))
        feed[d] = tm.aligned(values.astype(d))
    out = s.run(feed)
    for d in tm.DTYPES:
        assert out[f"out_{d}"].dtype == np.dtype(d)
        np.testing.assert_array_equal(out[f"out_{d}"], feed[d])
        assert batch == 0 or not np.shares_memory(out[f"out_{d}"], feed[d])
