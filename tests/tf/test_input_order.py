"""A SavedModel's inputs come in the order the model defines them (its function's arguments), not in the
key order of its SignatureDef (a map): a sequence of inputs is taken in that order, equal to the
model's own output. A signature with no order (a dict of inputs, a TensorFlow 1 graph) takes its inputs
by name only, and says so."""
import ctypes

import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

from helpers import jb_c
from helpers import tf_models as tm
from helpers.tf_models import tf

import juno_bridge as jb

_SESSIONS = {}


def _session(path):
    if path not in _SESSIONS:
        _SESSIONS[path] = jb.Session(path, intra_op_threads=1)
    return _SESSIONS[path]


def _feed(names, batch, seed):
    """Aligned inputs for ORDERED_TWO / ORDERED_THREE, name -> array."""
    rng = np.random.default_rng(seed)
    shapes = {"zeta_charge": ((batch, 3), np.float32), "alpha_time": ((batch, 3), np.float32),
              "category": ((batch, 1), np.int32)}
    feed = {}
    for name in names:
        shape, dtype = shapes[name]
        values = rng.integers(0, 5, shape) if dtype == np.int32 else rng.standard_normal(shape)
        feed[name] = tm.aligned(values.astype(dtype))
    return feed


@pytest.mark.parametrize("n", [2, 3])
def test_keras_inputs_come_in_the_order_the_model_defines_them(n):
    model, path = tm.keras_ordered(n)
    names = tm.ORDERED_TWO if n == 2 else tm.ORDERED_THREE
    assert sorted(names) != list(names)  # key order would differ
    s = _session(path)
    assert [i.name for i in s.inputs()] == [t.name.split(":")[0] for t in model.inputs] == list(names)
    assert s.metadata()["custom"]["input_order"] == "positional"


def _defined(feed) -> np.ndarray:
    """What the models compute (tf_models.ORDERED_TWO / ORDERED_THREE), in numpy."""
    z, a = feed["zeta_charge"], feed["alpha_time"]
    if "category" not in feed:
        return z * 10.0 + a
    return z * 100.0 + feed["category"].astype(np.float32) * 10.0 + a


@settings(max_examples=20, deadline=None)
@given(n=st.sampled_from([2, 3]), batch=st.integers(1, 64), seed=st.integers(0, 2**32 - 1))
@example(n=3, batch=3, seed=0)
def test_keras_positional_and_named_runs_equal_the_model(n, batch, seed):
    # The reference is the model's definition, which the SavedModel's own signature computes. Keras 3's
    # eager call of the functional model is not one: with 3 events it adds category[j] to column j (it
    # takes the [3, 1] input for a row: 10x-integer errors off the diagonal), so comparing with it failed
    # whenever hypothesis drew B = 3.
    model, path = tm.keras_ordered(n)
    names = tm.ORDERED_TWO if n == 2 else tm.ORDERED_THREE
    feed = _feed(names, batch, seed)
    want = _defined(feed)
    if batch != 3:
        np.testing.assert_allclose(np.asarray(model([feed[name] for name in names])), want, rtol=1e-6, atol=1e-5)
    s = _session(path)
    positional = s.run([feed[name] for name in names])["output_0"]
    named = s.run(dict(reversed(feed.items())))["output_0"]  # a dict in any order of keys
    np.testing.assert_allclose(positional, want, rtol=1e-6, atol=1e-5)
    np.testing.assert_array_equal(named, positional)


def test_the_example_of_the_issue_gives_12_not_21():
    _, path = tm.keras_ordered(2)
    z = tm.aligned(np.ones((1, 3), np.float32))
    a = tm.aligned(np.full((1, 3), 2, np.float32))
    s = _session(path)
    np.testing.assert_array_equal(s.run([z, a])["output_0"], np.full((1, 3), 12, np.float32))
    np.testing.assert_array_equal(s.run({"alpha_time": a, "zeta_charge": z})["output_0"], np.full((1, 3), 12))
    assert s.run_async([z, a]).result(timeout=60)["output_0"][0, 0] == 12
    out = np.empty((1, 3), np.float32)
    s.bind([z, a], out={"output_0": out}).run()
    assert out[0, 0] == 12


def test_tf_function_input_signature_order_is_the_input_order():
    path = tm.ordered_function()
    s = _session(path)
    assert [i.name for i in s.inputs()] == list(tm.ORDERED_TWO)
    feed = _feed(tm.ORDERED_TWO, 5, 1)
    want = tf.saved_model.load(str(path)).signatures["serving_default"](
        **{k: tf.constant(v) for k, v in feed.items()})["y"].numpy()
    np.testing.assert_allclose(s.run([feed["zeta_charge"], feed["alpha_time"]])["y"], want, rtol=1e-6)
    np.testing.assert_allclose(s.run(feed)["y"], want, rtol=1e-6)


def test_swapped_inputs_of_different_dtypes_are_refused_with_the_order_as_the_cause():
    _, path = tm.keras_ordered(3)
    feed = _feed(tm.ORDERED_THREE, 2, 2)
    swapped = [feed["category"], feed["zeta_charge"], feed["alpha_time"]]
    with pytest.raises(jb.InputTypeError) as error:
        _session(path).run(swapped)
    message = str(error.value)
    assert "input 'zeta_charge': expected dtype float32, got int32" in message
    assert "as a sequence, taken in the model's input order: 'zeta_charge' (float32), 'category' (int32), " \
           "'alpha_time' (float32)" in message and "by name" in message
    with pytest.raises(jb.InputTypeError) as named:  # by name, the order is not the cause: no word of it
        _session(path).run({"zeta_charge": feed["category"], "category": feed["category"],
                            "alpha_time": feed["alpha_time"]})
    assert "sequence" not in str(named.value)


@pytest.mark.parametrize("model", ["keras dict", "tf1 graph"])
def test_a_signature_without_an_order_takes_its_inputs_by_name_only(model):
    if model == "keras dict":
        keras_model, path = tm.keras_dict_inputs()
        output, reason = "output_0", "takes them as a dict"
    else:
        keras_model, path = None, tm.tf1_graph()
        output, reason = "y", "do not reach a saved function"
    s = _session(path)
    assert [i.name for i in s.inputs()] == sorted(tm.ORDERED_TWO)  # key order, and said to be no order
    custom = s.metadata()["custom"]
    assert custom["input_order"] == "names only" and reason in custom["input_order_note"]
    feed = _feed(tm.ORDERED_TWO, 4, 3)
    got = s.run(feed)[output]
    np.testing.assert_allclose(got, feed["zeta_charge"] * 10 + feed["alpha_time"], rtol=1e-6)
    if keras_model is not None:
        np.testing.assert_allclose(got, np.asarray(keras_model(feed)), rtol=1e-6)
    for call in (lambda: s.run([feed["zeta_charge"], feed["alpha_time"]]),
                 lambda: s.run_async([feed["zeta_charge"], feed["alpha_time"]]).result(timeout=60),
                 lambda: s.bind([feed["zeta_charge"], feed["alpha_time"]], out={output: np.empty((4, 3), np.float32)})):
        with pytest.raises(jb.InputError, match=r"gives its inputs no order: .*" + reason +
                           r".*give them by name, a dict \{'alpha_time': \.\.\., 'zeta_charge': \.\.\.\}"):
            call()


def test_one_input_needs_no_order():
    s = jb.Session(tm.tiny())
    assert s.metadata()["custom"]["input_order"] == "positional"
    x = tm.aligned(np.random.default_rng(4).standard_normal((3, 8)).astype(np.float32))
    np.testing.assert_array_equal(s.run([x])["y"], s.run({"x": x})["y"])


def test_c_abi_lists_and_takes_the_inputs_in_the_models_order():
    model, path = tm.keras_ordered(2)
    lib = jb_c.load()
    handle = ctypes.c_void_p()
    assert lib.jb_session_open(str(path).encode(), None, ctypes.byref(handle)) == jb_c.OK, jb_c.last_error(lib)
    try:
        names = []
        for i in range(lib.jb_session_num_inputs(handle)):
            info = jb_c.TensorInfo()
            assert lib.jb_session_input_info(handle, i, ctypes.byref(info)) == jb_c.OK
            names.append(info.name.decode())
        assert names == list(tm.ORDERED_TWO)
        feed = _feed(tm.ORDERED_TWO, 2, 5)
        views = (jb_c.TensorView * 2)(*(jb_c.view(feed[n].ctypes.data, jb_c.FLOAT32, feed[n].shape) for n in names))
        y = np.full((2, 3), np.nan, np.float32)
        outs = (jb_c.TensorView * 1)(jb_c.view(y.ctypes.data, jb_c.FLOAT32, y.shape))
        assert lib.jb_session_run(handle, views, 2, outs, 1) == jb_c.OK, jb_c.last_error(lib)
        np.testing.assert_allclose(y, np.asarray(model([feed[n] for n in names])), rtol=1e-6, atol=1e-5)
    finally:
        lib.jb_session_close(handle)
