"""The Session as a Python user meets it: what it tells about the model, how it opens and closes, and the
ways to pass inputs and choose outputs."""
from __future__ import annotations

import collections
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import juno_bridge as jb
from helpers import onnx_models
from helpers.onnx_models import make_model, value_info
from onnx import helper


def test_metadata_reports_what_the_model_declares(model_path):
    s = jb.Session(model_path("with_metadata", onnx_models.with_metadata))
    assert s.metadata() == {"producer_name": "juno-bridge-tests", "graph_name": "vertex_graph",
                            "domain": "org.juno.test", "description": "reconstructs the vertex", "version": 42,
                            "custom": {"detector": "CD-LPMT", "n_pmt": "17612"}}


def test_inputs_and_outputs_describe_dtype_shape_and_symbolic_dims(model_path):
    s = jb.Session(model_path("multi_io", onnx_models.multi_io))
    a, b, c = s.inputs()
    assert isinstance(a, jb.TensorInfo)
    assert (a.name, a.dtype, a.shape, a.dim_names, a.type_name) == ("a", np.dtype(np.float32), (-1, 3), ("batch", None),
                                                                    "tensor(float)")
    assert (c.name, c.shape, c.dim_names) == ("c", (3,), (None,))
    assert [(o.name, o.dtype) for o in s.outputs()] == [("s", np.float32), ("d", np.float32), ("n", np.float64)]
    assert repr(a) == "TensorInfo('a', float32, [batch, 3])"


def test_dynamic_dims_without_a_name_are_minus_one_and_unknown_rank_is_none(model_path):
    s = jb.Session(model_path("identity_f64_anon", onnx_models.identity, np.float64, (None, 4, "n")))
    x = s.inputs()[0]
    assert (x.shape, x.dim_names) == ((-1, 4, -1), (None, None, "n"))
    assert repr(x) == "TensorInfo('x', float64, [?, 4, n])"
    unknown = jb.Session(model_path("identity_any_rank_u8", onnx_models.identity, np.uint8, None)).inputs()[0]
    assert (unknown.shape, unknown.dim_names, unknown.dtype) == (None, None, np.dtype(np.uint8))


def test_every_supported_dtype_is_reported_as_the_numpy_dtype(model_path):
    for name in jb.SUPPORTED_DTYPES:
        info = jb.Session(model_path(f"identity_{name}", onnx_models.identity, np.dtype(name))).outputs()[0]
        assert info.dtype == np.dtype(name)


def test_session_from_bytes_equals_session_from_path(multi_io_model):
    from_path = jb.Session(multi_io_model)
    from_bytes = jb.Session(multi_io_model.read_bytes())
    from_bytearray = jb.Session(bytearray(multi_io_model.read_bytes()))
    assert from_path.inputs() == from_bytes.inputs() == from_bytearray.inputs()
    assert from_path.outputs() == from_bytes.outputs()
    assert from_path.metadata() == from_bytes.metadata()
    feeds = {"a": np.ones((2, 3), np.float32), "b": np.eye(2, 3, dtype=np.float32), "c": np.arange(3, dtype=np.float32)}
    for key, value in from_path.run(feeds).items():
        np.testing.assert_array_equal(from_bytes.run(feeds)[key], value)
    assert from_bytes.model == f"<{len(multi_io_model.read_bytes())} bytes>"
    assert from_path.model == str(multi_io_model)


def test_results_come_in_the_models_output_order(multi_io_model):
    s = jb.Session(multi_io_model)
    a, b, c = np.ones((2, 3), np.float32), np.full((2, 3), 2, np.float32), np.arange(3, dtype=np.float32)
    by_name = s.run({"c": c, "b": b, "a": a})  # dict order of inputs does not matter
    assert list(by_name) == ["s", "d", "n"]
    by_position = s.run([a, b, c])
    by_tuple = s.run((a, b, c))
    by_mapping = s.run(collections.OrderedDict(b=b, a=a, c=c))
    for r in (by_position, by_tuple, by_mapping):
        assert list(r) == ["s", "d", "n"]
        for key in r:
            np.testing.assert_array_equal(r[key], by_name[key])
    np.testing.assert_array_equal(by_name["s"], a + b)
    np.testing.assert_array_equal(by_name["d"], a - c)
    np.testing.assert_array_equal(by_name["n"], -c.astype(np.float64))


def test_outputs_selects_a_subset_in_the_order_asked(multi_io_model):
    s = jb.Session(multi_io_model)
    feeds = [np.ones((2, 3), np.float32), np.ones((2, 3), np.float32), np.arange(3, dtype=np.float32)]
    r = s.run(feeds, outputs=["n", "s"])
    assert list(r) == ["n", "s"]
    np.testing.assert_array_equal(r["s"], 2)
    assert list(s.run(feeds, outputs="d")) == ["d"]


def test_out_and_allocated_outputs_mix_in_one_run(multi_io_model):
    s = jb.Session(multi_io_model)
    feeds = [np.ones((2, 3), np.float32), np.ones((2, 3), np.float32), np.arange(3, dtype=np.float32)]
    d = np.full((2, 3), -7, np.float32)
    r = s.run(feeds, out={"d": d})
    assert list(r) == ["s", "d", "n"] and r["d"] is d
    np.testing.assert_array_equal(d, feeds[0] - feeds[2])
    n = np.empty(3, np.float64)
    r = s.run(feeds, out={"n": n}, outputs=["n", "d"])
    assert list(r) == ["n", "d"] and r["n"] is n


def test_close_and_context_manager(add_f32):
    with jb.Session(add_f32) as s:
        assert not s.closed and s.backend == "onnxruntime"
        assert "onnxruntime" in repr(s)
    assert s.closed and "closed" in repr(s)


def test_version_strings():
    from juno_bridge import _core

    assert _core.version() == jb.__version__
    assert jb.onnxruntime_info()["version"].startswith("1.")


def test_session_config_entries_pass_through(add_f32):
    # An ONNX Runtime session config key (documented: session.intra_op.allow_spinning) is accepted.
    with jb.Session(add_f32, config={"session.intra_op.allow_spinning": "0"}) as s:
        x = np.ones((1, 2), np.float32)
        np.testing.assert_array_equal(s.run([x, x])["c"], 2)


def test_many_inputs_and_outputs_beyond_the_stack_arrays(tmp_path):
    # The bridge keeps up to 16 tensors per call on the stack: 20 inputs and outputs take the heap path.
    n = 20
    nodes = [helper.make_node("Neg", [f"x{i}"], [f"y{i}"]) for i in range(n)]
    model = make_model(nodes, [value_info(f"x{i}", np.float32, (2,)) for i in range(n)],
                       [value_info(f"y{i}", np.float32, (2,)) for i in range(n)])
    s = jb.Session(model.SerializeToString())
    xs = [np.full(2, i, np.float32) for i in range(n)]
    outs = {f"y{i}": np.empty(2, np.float32) for i in range(0, n, 2)}
    r = s.run(xs, out=outs)
    assert list(r) == [f"y{i}" for i in range(n)]
    for i in range(n):
        np.testing.assert_array_equal(r[f"y{i}"], -i)
        if i % 2 == 0:
            assert r[f"y{i}"] is outs[f"y{i}"]


GLOBAL_POOL_CHILD = """
import json, sys
import numpy as np
import juno_bridge as jb
x = np.ones((2, 3), np.float32)
report = {}
sessions = [jb.Session(sys.argv[1], global_thread_pool=True, intra_op_threads=1) for _ in range(3)]
report["sums"] = [float(s.run([x, x])["c"].sum()) for s in sessions]
plain = jb.Session(sys.argv[1])  # a session with its own pools beside the global ones
report["plain"] = float(plain.run([x, x])["c"].sum())
print(json.dumps(report))
"""

LATE_GLOBAL_POOL_CHILD = """
import json, sys
import juno_bridge as jb
jb.Session(sys.argv[1])
try:
    jb.Session(sys.argv[1], global_thread_pool=True)
    print(json.dumps(None))
except jb.Error as e:
    print(json.dumps([type(e).__name__, str(e)]))
"""


def run_python(code, *args):
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "JUNO_BRIDGE_ONNXRUNTIME"})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_sessions_share_the_process_wide_thread_pools(add_f32):
    assert run_python(GLOBAL_POOL_CHILD, add_f32) == {"sums": [12.0] * 3, "plain": 12.0}


def test_global_thread_pools_asked_for_too_late_is_a_clear_error(add_f32):
    kind, message = run_python(LATE_GLOBAL_POOL_CHILD, add_f32)
    assert kind == "InvalidArgumentError"
    assert "global_thread_pool" in message and "first session" in message


def test_out_entry_of_none_lets_the_runtime_allocate_that_output(multi_io_model):
    s = jb.Session(multi_io_model)
    feeds = [np.ones((2, 3), np.float32), np.ones((2, 3), np.float32), np.arange(3, dtype=np.float32)]
    d = np.empty((2, 3), np.float32)
    r = s.run(feeds, out={"s": None, "d": d})
    assert r["d"] is d and r["s"].base is not None and r["s"].base is not d
    np.testing.assert_array_equal(r["s"], 2)


def test_model_with_external_weights_in_a_non_ascii_directory(tmp_path):
    import onnx

    from helpers.reference import assert_results_equal, reference_run

    directory = tmp_path / "détecteur 中心"
    directory.mkdir()
    path = directory / "model.onnx"
    onnx.save(onnx_models.dense(64, 128, 4), str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="weights.bin", size_threshold=0)
    assert (directory / "weights.bin").stat().st_size > 64 * 128 * 4
    x = np.random.default_rng(1).standard_normal((3, 64)).astype(np.float32)
    assert_results_equal(jb.Session(path, intra_op_threads=1).run({"x": x}), reference_run(path, {"x": x}))
    with pytest.raises(jb.ModelLoadError, match="[Ee]xternal data"):
        jb.Session(path.read_bytes())  # from bytes the weights file cannot be found


def test_non_ascii_tensor_names_round_trip():
    model = make_model([helper.make_node("Identity", ["pmt·q"], ["ŷ"])], [value_info("pmt·q", np.float32, ("批",))],
                       [value_info("ŷ", np.float32, ("批",))])
    s = jb.Session(model.SerializeToString())
    assert (s.inputs()[0].name, s.inputs()[0].dim_names, s.outputs()[0].name) == ("pmt·q", ("批",), "ŷ")
    x = np.ones(2, np.float32)
    assert list(s.run({"pmt·q": x})) == ["ŷ"]
    with pytest.raises(jb.InputTypeError, match="input 'pmt·q'"):
        s.run({"pmt·q": x.astype(np.float64)})


# Metadata travels as C strings: any text without NUL (surrogates cannot be encoded at all).
c_text = st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\x00")
names = st.text(c_text, min_size=1, max_size=12)


@given(custom=st.dictionaries(names, st.text(c_text, max_size=20), max_size=5), producer=st.text(c_text, max_size=20),
       version=st.integers(0, 2**62))
def test_metadata_round_trips_any_strings(custom, producer, version):
    model = onnx_models.identity(np.float32, ("n",))
    model.producer_name, model.model_version = producer, version
    helper.set_model_props(model, custom)
    md = jb.Session(model.SerializeToString()).metadata()
    assert (md["producer_name"], md["version"], md["custom"]) == (producer, version, custom)


dims = st.one_of(st.integers(0, 20), st.none(), st.sampled_from(["batch", "pmt", "n_hits", "时间"]))


@given(shape=st.lists(dims, max_size=6), dtype=st.sampled_from(list(jb.SUPPORTED_DTYPES)))
def test_inputs_report_any_declared_shape(shape, dtype):
    s = jb.Session(onnx_models.identity(np.dtype(dtype), shape).SerializeToString())
    info = s.inputs()[0]
    if not shape:  # ONNX Runtime reports rank 0 for a scalar and for an unknown rank alike
        assert info.shape in ((), None)
        return
    assert info.dtype == np.dtype(dtype)
    assert info.shape == tuple(d if isinstance(d, int) else -1 for d in shape)
    assert info.dim_names == tuple(d if isinstance(d, str) else None for d in shape)


def test_a_session_can_be_weakly_referenced(add_f32):
    import weakref

    s = jb.Session(add_f32)
    ref = weakref.ref(s)
    assert ref() is s


def test_bytes_are_viewed_as_uint8_not_as_a_string_scalar(tmp_path):
    path = onnx_models.save(onnx_models.identity(np.uint8, shape=(None,)), tmp_path, "u8")
    data = b"juno-bridge"
    out = jb.Session(path).run([data])
    assert out[next(iter(out))].tobytes() == data
