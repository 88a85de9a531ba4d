"""The compiled benchmark loops behind `juno-bridge bench`, checked for correctness (not speed):
jb-bench-loop (juno-bridge's C++ Session) and jb-ort-raw-loop (raw ONNX Runtime C API) print
well-formed JSON, compute the same outputs as each other and as the Python path, and fail clearly."""
from __future__ import annotations

import json
import re
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import juno_bridge as jb
from juno_bridge import paths
from helpers.native_build import deterministic_values, run_program, write_mlp_model

CHECK_VALUES = 8  # values per output the loops print with --check
TIMING_KEYS = ("median_us", "p90_us", "mean_us", "min_us")


@pytest.fixture(scope="module")
def ort_library():
    return jb.onnxruntime_info()["path"]


@pytest.fixture(scope="module")
def mlp_model(tmp_path_factory):
    return write_mlp_model(tmp_path_factory.mktemp("bench") / "mlp.onnx")


@pytest.fixture(scope="module")
def mixed_dtype_model(tmp_path_factory):
    """Identity on int64, float16, bool and uint8 inputs: checks that both loops fill every kind of
    input the same way as each other and as deterministic_values describes."""
    import onnx  # a dependency of juno-bridge
    from onnx import TensorProto, helper

    kinds = {"a": (TensorProto.INT64, ["batch", 3]), "b": (TensorProto.FLOAT16, ["batch", 2]),
             "c": (TensorProto.BOOL, ["batch"]), "d": (TensorProto.UINT8, [2, "batch"])}
    graph = helper.make_graph(
        [helper.make_node("Identity", [name], [name + "_out"]) for name in kinds], "mixed",
        [helper.make_tensor_value_info(name, t, shape) for name, (t, shape) in kinds.items()],
        [helper.make_tensor_value_info(name + "_out", t, shape) for name, (t, shape) in kinds.items()])
    model = helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path_factory.mktemp("bench") / "mixed.onnx"
    onnx.save(model, str(path))
    return path


def bench_loop(model, batch, iterations=30, warmup=3, *extra):
    return run_program([paths.program("jb-bench-loop"), model, batch, iterations, warmup, *extra])


def raw_loop(model, batch, library, iterations=30, warmup=3, *extra):
    return run_program([paths.program("jb-ort-raw-loop"), model, batch, iterations, warmup, library, *extra])


def parse(result, runner, iterations) -> dict:
    assert result.returncode == 0, f"{runner} failed: {result.stderr}"
    lines = result.stdout.splitlines()
    assert len(lines) == 1, f"{runner} must print one JSON line, printed {lines}"
    report = json.loads(lines[0])
    assert report["runner"] == runner and report["iterations"] == iterations
    for key in TIMING_KEYS:
        assert isinstance(report[key], float) and report[key] > 0, (key, report)
    assert report["min_us"] <= report["median_us"] <= report["p90_us"]
    return report


def first_values(array: np.ndarray) -> list:
    """What --check prints for an output: its first values as numbers (float16 as its raw bits)."""
    flat = array.reshape(-1)[:CHECK_VALUES]
    if flat.dtype == np.float16:
        flat = flat.view(np.uint16)
    return [float(v) for v in flat.astype(np.float64)]


def test_both_loops_print_timings_and_agree_with_python(mlp_model, ort_library):
    batch = 4
    ours = parse(bench_loop(mlp_model, batch, 40, 4, "--check"), "jb-bench-loop", 40)
    raw = parse(raw_loop(mlp_model, batch, ort_library, 40, 4, "--check"), "jb-ort-raw-loop", 40)
    assert ours["outputs"] == raw["outputs"]
    session = jb.Session(str(mlp_model), intra_op_threads=1)
    expected = session.run({"x": deterministic_values((batch, 8))})
    assert ours["outputs"] == {name: first_values(v) for name, v in expected.items()}


def test_without_check_no_outputs_are_printed(mlp_model, ort_library):
    assert "outputs" not in parse(bench_loop(mlp_model, 1, 5, 0), "jb-bench-loop", 5)
    assert "outputs" not in parse(raw_loop(mlp_model, 1, ort_library, 5, 0), "jb-ort-raw-loop", 5)


@settings(max_examples=4, deadline=None)
@given(batch=st.integers(min_value=1, max_value=40))
def test_both_loops_fill_every_dtype_alike_for_any_batch(mixed_dtype_model, ort_library, batch):
    ours = parse(bench_loop(mixed_dtype_model, batch, 5, 1, "--check"), "jb-bench-loop", 5)
    raw = parse(raw_loop(mixed_dtype_model, batch, ort_library, 5, 1, "--check"), "jb-ort-raw-loop", 5)
    assert ours["outputs"] == raw["outputs"]
    k = (np.arange(3 * batch) * 37) % 101
    assert ours["outputs"]["a_out"] == first_values((k - 50).astype(np.int64))
    assert ours["outputs"]["b_out"] == first_values(deterministic_values((batch, 2), np.float16))
    assert ours["outputs"]["c_out"] == first_values((k[:batch] % 2).astype(bool))
    assert ours["outputs"]["d_out"] == first_values(k[:2 * batch].astype(np.uint8))


def test_errors_are_clear_and_exit_1(mlp_model, ort_library, tmp_path):
    missing = tmp_path / "missing.onnx"
    for result in (bench_loop(missing, 1), raw_loop(missing, 1, ort_library)):
        assert result.returncode == 1 and "missing.onnx" in result.stderr and not result.stdout
    for result in (bench_loop(mlp_model, 0), raw_loop(mlp_model, 0, ort_library)):
        assert result.returncode == 1 and "BATCH" in result.stderr
    result = raw_loop(mlp_model, 1, tmp_path / "libonnxruntime.so.0")
    assert result.returncode == 1 and "cannot load the ONNX Runtime library" in result.stderr
    result = run_program([paths.program("jb-bench-loop"), mlp_model])
    assert result.returncode == 1 and "usage" in result.stderr


def test_bench_loop_runs_on_the_input_file_it_is_given(mlp_model, tmp_path):
    """--input: the first input's raw bytes (real events in `bench --only model`), which must fit it exactly."""
    batch = 3
    x = np.random.default_rng(5).standard_normal((batch, 8)).astype(np.float32)
    x.tofile(tmp_path / "x.f32")
    ours = parse(bench_loop(mlp_model, batch, 5, 1, "--check", "--input", tmp_path / "x.f32"), "jb-bench-loop", 5)
    expected = jb.Session(str(mlp_model), intra_op_threads=1).run({"x": x})
    assert ours["outputs"] == {name: first_values(v) for name, v in expected.items()}
    result = bench_loop(mlp_model, batch + 1, 5, 1, "--input", tmp_path / "x.f32")
    assert result.returncode == 1 and not result.stdout
    assert f"holds {x.nbytes} bytes; the first input at this batch takes {(batch + 1) * 8 * 4}" in result.stderr
    result = bench_loop(mlp_model, batch, 5, 1, "--input", tmp_path / "missing.f32")
    assert result.returncode == 1 and "cannot open --input" in result.stderr and "missing.f32" in result.stderr


def test_raw_loop_needs_only_libdl_and_bench_loop_finds_the_core_beside_it():
    def dynamic(name):
        return subprocess.run(["readelf", "-d", str(paths.program(name))], capture_output=True, text=True,
                              check=True).stdout

    raw_needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", dynamic("jb-ort-raw-loop"))
    assert not any("juno_bridge" in lib or "onnxruntime" in lib for lib in raw_needed), raw_needed
    bench = dynamic("jb-bench-loop")
    assert "libjuno_bridge.so" in bench and "$ORIGIN/../lib" in bench
