"""The python backend: a @juno_bridge.algorithm callable behind the same Session as an ONNX model."""
import sys
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import onnx
from onnx import TensorProto, helper, numpy_helper

import juno_bridge as jb
from helpers import pyalgos


def test_signature_with_symbolic_dims_and_metadata():
    s = jb.Session("python:helpers.pyalgos:reco")
    assert s.backend == "python"
    (pmt,) = s.inputs()
    assert (pmt.name, pmt.dtype, pmt.shape, pmt.dim_names) == ("pmt", np.float32, (-1, 2, 16), ("B", None, None))
    assert [(o.name, o.shape, o.dim_names) for o in s.outputs()] == [
        ("vertex", (-1, 3), ("B", None)), ("energy", (-1,), ("B",))]
    md = s.metadata()
    assert (md["graph_name"], md["domain"]) == ("reco", "helpers.pyalgos")
    assert md["description"].startswith("Sums the nPE channel")


def test_outputs_allocated_by_the_bridge_take_shapes_bound_from_the_inputs():
    x = np.random.default_rng(1).random((5, 2, 16), dtype=np.float32)
    out = jb.Session("python:helpers.pyalgos:reco").run({"pmt": x})
    assert out["energy"].shape == (5,) and out["vertex"].shape == (5, 3)
    np.testing.assert_allclose(out["energy"], x[:, 0].sum(axis=1), rtol=1e-6)
    np.testing.assert_array_equal(out["vertex"], x[:, 1, :3])
    assert out["energy"].ctypes.data % 64 == 0


def test_inputs_are_views_of_the_callers_memory_and_outputs_are_written_in_place():
    s = jb.Session("python:helpers.pyalgos:recording")
    a = np.arange(7, dtype=np.int32)
    b = np.ones(3, np.float32)
    c = np.zeros(7, np.int32)
    d = np.zeros(3, np.float32)
    before = s._stats()["tensors_wrapped"]
    result = s.run({"a": a, "b": b}, out={"c": c, "d": d})
    assert result["c"] is c and result["d"] is d
    np.testing.assert_array_equal(c, a * 2)
    assert pyalgos.seen["a"] == (a.ctypes.data, False, False, "in")
    assert pyalgos.seen["b"] == (b.ctypes.data, False, False, "in")
    assert pyalgos.seen["c"] == (c.ctypes.data, True, False, "out")
    assert pyalgos.seen["d"] == (d.ctypes.data, True, False, "out")
    stats = s._stats()
    assert stats["tensors_wrapped"] - before == 4
    assert stats["input_addresses"] == [a.ctypes.data, b.ctypes.data]


def test_a_subset_of_outputs_still_gives_the_callable_every_output():
    s = jb.Session("python:helpers.pyalgos:recording")
    out = s.run({"a": np.arange(3, dtype=np.int32), "b": np.zeros(3, np.float32)}, outputs=["d"])
    assert list(out) == ["d"]
    np.testing.assert_array_equal(out["d"], np.ones(3, np.float32))


def test_class_gets_typed_keyword_options_from_the_session_config():
    s = jb.Session("python:helpers.pyalgos:Affine",
                   config={"scale": "2.5", "offset": "3", "negate": "yes", "label": "e"})
    x = np.arange(4, dtype=np.float64)
    np.testing.assert_array_equal(s.run({"x": x})["y"], -(x * 2.5 + 3))


@pytest.mark.parametrize("config, words", [
    ({"scale": "big"}, ["scale", "float", "big"]),
    ({"negate": "maybe"}, ["negate", "bool", "maybe"]),
    ({"threshold": "1"}, ["threshold", "'scale'", "'offset'"]),
])
def test_bad_options_name_the_option(config, words):
    model = "python:helpers.pyalgos:Affine"
    with pytest.raises(jb.InvalidArgumentError) as e:
        jb.Session(model, config=config)
    for w in words:
        assert w in str(e.value)
    # The model is named once: the plugin prefixes, the Python side does not repeat it.
    assert str(e.value).count(f"python model '{model}'") == 1, str(e.value)
    assert str(e.value).startswith(f"python model '{model}': "), str(e.value)


@pytest.mark.parametrize("model, words", [
    ("python:no_such_module_xyz:f", ["cannot import", "no_such_module_xyz"]),
    ("python:helpers.pyalgos:nothing_here", ["no attribute", "nothing_here"]),
    ("python:helpers.pyalgos:not_declared", ["@juno_bridge.algorithm"]),
    ("python:helpers.pyalgos", ["python:package.module:attr"]),
])
def test_unloadable_algorithms_raise_model_load_errors(model, words):
    with pytest.raises(jb.ModelLoadError) as e:
        jb.Session(model)
    for w in words:
        assert w in str(e.value)
    # The model is named once: the plugin prefixes, the Python side does not repeat it.
    assert str(e.value).count(f"python model '{model}'") == 1, str(e.value)
    assert str(e.value).startswith(f"python model '{model}': "), str(e.value)


def test_exception_in_the_callable_carries_the_traceback_and_the_session_stays_usable():
    s = jb.Session("python:helpers.pyalgos:failing_on_negative")
    with pytest.raises(jb.RunError) as e:
        s.run({"x": np.array([1, -1], np.float32)})
    text = str(e.value)
    assert "Traceback" in text and "ValueError: negative energy in event" in text
    assert "failing_on_negative" in text and "pyalgos.py" in text
    np.testing.assert_array_equal(s.run({"x": np.array([1, 2], np.float32)})["y"], [2, 4])


def test_writing_to_an_input_view_is_an_error_and_leaves_the_input_untouched():
    x = np.zeros(3, np.float32)
    with pytest.raises(jb.RunError, match="read-only"):
        jb.Session("python:helpers.pyalgos:writes_input").run({"x": x})
    assert not x.any()


def test_returned_arrays_are_checked_and_copied_into_the_callers_buffer():
    x = np.random.default_rng(0).random((3, 32), dtype=np.float32)
    y = np.full((3, 4), np.nan, np.float32)
    s = jb.Session("python:helpers.pyalgos:linear_returning")
    assert s.run({"x": x}, out={"y": y})["y"] is y
    np.testing.assert_allclose(y, x @ pyalgos.W + pyalgos.BIAS, rtol=1e-6)


@pytest.mark.parametrize("name, words", [
    ("returns_float64", ["output 'y'", "float64", "float32"]),
    ("returns_short", ["output 'y'", "(2,)", "(3,)"]),
    ("returns_unknown", ["'z'", "'y'"]),
    ("returns_list", ["list", "dict"]),
])
def test_wrong_returned_outputs_name_the_output(name, words):
    s = jb.Session(f"python:helpers.pyalgos:{name}")
    with pytest.raises(jb.RunError) as e:
        s.run({"x": np.ones(3, np.float32)})
    for w in words:
        assert w in str(e.value)


def test_caller_output_of_the_wrong_bound_shape_names_the_output():
    s = jb.Session("python:helpers.pyalgos:reco")
    with pytest.raises(jb.InputError) as e:
        s.run({"pmt": np.zeros((4, 2, 16), np.float32)}, out={"energy": np.zeros(5, np.float32)})
    assert "output 'energy'" in str(e.value) and "B=4" in str(e.value) and "[5]" in str(e.value)


def test_inconsistent_symbolic_dims_across_inputs_are_an_input_error():
    @jb.algorithm(inputs={"a": ("float32", ("K",)), "b": ("float32", ("K",))}, outputs={"c": ("float32", ("K",))})
    def add(inputs, outputs):
        np.add(inputs["a"], inputs["b"], out=outputs["c"])

    pyalgos.add = add
    s = jb.Session("python:helpers.pyalgos:add")
    with pytest.raises(jb.InputError) as e:
        s.run({"a": np.zeros(3, np.float32), "b": np.zeros(4, np.float32)})
    assert "input 'b'" in str(e.value) and "'K'" in str(e.value)


def test_wrong_dtype_input_is_refused_before_the_callable_runs():
    with pytest.raises(jb.InputTypeError, match="input 'x': expected dtype float32, got float64"):
        jb.Session("python:helpers.pyalgos:failing_on_negative").run({"x": -np.ones(2)})


def test_a_kept_view_raises_on_later_use_instead_of_reading_freed_memory():
    pyalgos.kept.clear()
    s = jb.Session("python:helpers.pyalgos:keeping")
    x = np.arange(4, dtype=np.float32)
    with pytest.raises(jb.RunError, match="kept input 'x' \\(revoked"):
        s.run({"x": x})
    del x  # the caller's memory is gone
    stale = pyalgos.kept.pop()
    assert stale.shape == (4,) and not any(isinstance(v, np.floating) for v in stale.ravel())
    with pytest.raises(jb.ReleasedViewError, match="released buffer"):
        stale.sum()
    with pytest.raises(jb.ReleasedViewError):
        np.asarray(stale, dtype=np.float32)
    with pytest.raises(jb.ReleasedViewError):
        float(stale[0])


def test_a_kept_derived_view_fails_the_run_naming_the_input():
    pyalgos.kept.clear()
    s = jb.Session("python:helpers.pyalgos:keeping_a_slice")
    with pytest.raises(jb.RunError, match="a view derived from input 'x'"):
        s.run({"x": np.arange(4, dtype=np.float32)})
    pyalgos.kept.clear()
    pyalgos.keep[0] = False
    try:  # the next event, with nothing kept, runs normally
        np.testing.assert_array_equal(s.run({"x": np.arange(3, dtype=np.float32)})["y"], [0, 1, 2])
    finally:
        pyalgos.keep[0] = True


def test_a_finished_frame_someone_holds_does_not_keep_the_views():
    # Dask's worker profiler samples every thread's stack; a call returning mid-sample leaves its frame,
    # with its locals, alive for a moment: the run is not failed for it, and the frame holds no view.
    pyalgos.held_frames.clear()
    s = jb.Session("python:helpers.pyalgos:sampled")
    x = np.arange(4, dtype=np.float32)
    np.testing.assert_array_equal(s.run({"x": x})["y"], x + x[0])
    (frame,) = pyalgos.held_frames
    assert frame.f_locals == {}
    out = np.empty(4, np.float32)
    s.run({"x": x}, out={"y": out})  # again, into the caller's output
    np.testing.assert_array_equal(out, x + x[0])
    pyalgos.held_frames.clear()


def test_a_kept_generator_still_keeps_its_view_and_is_not_closed():
    pyalgos.kept.clear()
    s = jb.Session("python:helpers.pyalgos:keeping_a_generator")
    with pytest.raises(jb.RunError, match="kept input 'x' \\(revoked"):
        s.run({"x": np.arange(4, dtype=np.float32)})
    (gen,) = pyalgos.kept
    assert gen.gi_frame is not None  # suspended, not finalized
    with pytest.raises(jb.ReleasedViewError):
        float(next(gen))
    pyalgos.kept.clear()


def _linear_onnx(path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 32])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 4])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
        "linear", [x], [y], [numpy_helper.from_array(pyalgos.W, "W"), numpy_helper.from_array(pyalgos.BIAS, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return str(path)


@pytest.fixture(scope="module")
def linear_sessions(tmp_path_factory):
    path = _linear_onnx(tmp_path_factory.mktemp("onnx") / "linear.onnx")
    return jb.Session(path), jb.Session("python:helpers.pyalgos:linear")


@settings(max_examples=25, deadline=None)
@given(x=hnp.arrays(np.float32, st.tuples(st.integers(1, 6), st.just(32)),
                    elements=st.floats(-100, 100, width=32)))
def test_python_callable_and_onnx_give_the_same_numbers_through_one_api(linear_sessions, x):
    by_onnx, by_python = linear_sessions
    assert [i.shape for i in by_onnx.inputs()] == [i.shape for i in by_python.inputs()]
    a = by_onnx.run({"x": x})["y"]
    b = by_python.run({"x": x})["y"]
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)


def test_many_threads_share_one_session_without_deadlock():
    s = jb.Session("python:helpers.pyalgos:reco")
    rng = np.random.default_rng(3)
    events = [rng.random((2, 2, 16), dtype=np.float32) for _ in range(8)]
    errors, results = [], {}

    def work(k):
        try:
            for _ in range(50):
                results[k] = s.run({"pmt": events[k]})["energy"]
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # Python switches threads inside the callables: runs interleave
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        sys.setswitchinterval(interval)
    assert not errors and not any(t.is_alive() for t in threads)
    for k, ev in enumerate(events):
        np.testing.assert_allclose(results[k], ev[:, 0].sum(axis=1), rtol=1e-6)


def test_decorator_refuses_output_dims_no_input_binds():
    with pytest.raises(jb.InvalidArgumentError, match="'M' appears in no input"):
        jb.algorithm(inputs={"x": ("float32", ("N",))}, outputs={"y": ("float32", ("M",))})


def test_decorator_refuses_unsupported_dtypes():
    with pytest.raises(jb.InvalidArgumentError, match="complex64"):
        jb.algorithm(inputs={"x": ("complex64", (3,))}, outputs={"y": ("float32", (3,))})


def test_an_algorithm_instance_is_closed_with_its_session():
    import numpy as np

    from helpers import pyalgos

    pyalgos.closed.clear()
    a = jb.Session("python:helpers.pyalgos:Closing", config={"label": "a"})
    b = jb.Session("python:helpers.pyalgos:Closing", config={"label": "a"})  # shares a's backend session
    x = np.ones((2, 8), np.float32)
    assert a.run({"x": x})["y"].sum() == 16
    a.close()
    assert pyalgos.closed == []  # b still uses it
    b.close()
    assert pyalgos.closed == ["a"]  # at once, though the instance is in a reference cycle


def test_a_failing_close_is_reported_not_raised():
    import sys

    from helpers import pyalgos

    pyalgos.closed.clear()
    seen = []
    hook, sys.unraisablehook = sys.unraisablehook, seen.append
    try:
        jb.Session("python:helpers.pyalgos:Closing", config={"label": "failing"}).close()
    finally:
        sys.unraisablehook = hook
    assert pyalgos.closed == ["failing"]
    assert len(seen) == 1 and "close failed" in str(seen[0].exc_value)
