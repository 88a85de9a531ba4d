"""A C program (C ABI) and a C++ program (C++ API) built against the installed package, with the flags
`juno-bridge config` prints and with CMake's find_package, run without Python (clean environment), and
their numbers checked bit for bit against the Python path (jb.Session) on the same model and inputs."""
from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import juno_bridge as jb
from juno_bridge import paths
from helpers.native_build import (CPP_TESTS, build, deterministic_values, require_tool, run_program,
                          write_mlp_model)

FEATURES = 8


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_mlp_model(tmp_path_factory.mktemp("model") / "mlp.onnx", features=FEATURES)


@pytest.fixture(scope="module")
def c_program(tmp_path_factory):
    require_tool("gcc")
    exe = tmp_path_factory.mktemp("c_program") / "run_model"
    build(["gcc", "-std=c11", "-O2", "-g0", "-Wall", "-Wextra", *paths.cflags("c"),
           CPP_TESTS / "run_model.c", "-o", exe, *paths.libs()])
    return exe


@pytest.fixture(scope="module")
def cpp_program(tmp_path_factory):
    require_tool("g++")
    exe = tmp_path_factory.mktemp("cpp_program") / "run_model_cpp"
    build(["g++", "-O2", "-g0", "-Wall", "-Wextra", *paths.cflags(),
           CPP_TESTS / "run_model.cpp", "-o", exe, *paths.libs()])
    return exe


@pytest.fixture(scope="module")
def cmake_program(tmp_path_factory):
    require_tool("cmake")
    build_dir = tmp_path_factory.mktemp("cmake_program")
    build(["cmake", "-S", CPP_TESTS, "-B", build_dir, f"-Djuno_bridge_DIR={paths.cmake_dir()}",
           "-DCMAKE_CXX_FLAGS=-O2 -g0"])
    build(["cmake", "--build", build_dir, "--parallel", "2"])
    return build_dir / "run_model_cpp"


@pytest.fixture(scope="module")
def python_session(model):
    with_one_thread = jb.Session(str(model), intra_op_threads=1)
    yield with_one_thread
    with_one_thread.close()


def parse_values(stdout: str) -> dict:
    """("how", "name") -> float32 array, from the programs' exact "values" lines (C99 hex floats)."""
    result = {}
    for line in stdout.splitlines():
        if line.startswith("values "):
            _, how, name, shape, *numbers = line.split()
            dims = () if shape == "-" else tuple(int(d) for d in shape.split(","))
            values = np.array([float.fromhex(v) for v in numbers], dtype=np.float64).astype(np.float32)
            result[how, name] = values.reshape(dims)
    return result


def run_and_compare(program, model, session, batch: int, expected_kinds: set) -> None:
    result = run_program([program, model, batch])
    assert result.returncode == 0, f"{program.name} failed:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}"
    assert re.search(r"^\d+ passed, 0 failed$", result.stdout, re.M), result.stdout[-2000:]
    assert "FAIL" not in result.stdout
    printed = parse_values(result.stdout)
    assert {how for how, _ in printed} == expected_kinds

    reference = session.run({"x": deterministic_values((batch, FEATURES))})
    for (how, name), values in printed.items():
        want = reference[name]
        assert values.shape == want.shape, (how, name)
        assert np.array_equal(values.view(np.uint32), want.view(np.uint32)), (
            f"{program.name} {how} output '{name}' differs from the Python path:\n{values}\n{want}")


def needed_libraries(program) -> list[str]:
    out = subprocess.run(["readelf", "-d", str(program)], capture_output=True, text=True, check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", out)


def test_c_program_matches_python_bitwise(c_program, model, python_session):
    run_and_compare(c_program, model, python_session, 3, {"caller", "runtime", "mixed", "subset"})


def test_cpp_program_matches_python_bitwise(cpp_program, model, python_session):
    run_and_compare(cpp_program, model, python_session, 3, {"caller", "runtime"})


def test_cmake_built_program_matches_python_bitwise(cmake_program, model, python_session):
    run_and_compare(cmake_program, model, python_session, 3, {"caller", "runtime"})


@settings(max_examples=5, deadline=None)
@given(batch=st.integers(min_value=0, max_value=64))
def test_c_program_matches_python_for_any_batch(c_program, model, python_session, batch):
    """Including the empty batch (an event window with nothing to infer)."""
    run_and_compare(c_program, model, python_session, batch, {"caller", "runtime", "mixed", "subset"})


@settings(max_examples=5, deadline=None)
@given(batch=st.integers(min_value=1, max_value=64))
def test_cpp_program_matches_python_for_any_batch(cpp_program, model, python_session, batch):
    run_and_compare(cpp_program, model, python_session, batch, {"caller", "runtime"})


def test_cpp_program_handles_an_empty_batch(cpp_program, model, python_session):
    run_and_compare(cpp_program, model, python_session, 0, {"caller", "runtime"})


def test_programs_need_no_python_and_find_the_library_by_rpath(c_program, cpp_program, cmake_program):
    for program in (c_program, cpp_program, cmake_program):
        needed = needed_libraries(program)
        assert "libjuno_bridge.so" in needed, needed
        assert not any("python" in lib for lib in needed), needed
    # The flags from paths.libs() and the CMake config both point the loader at the package's lib/.
    for program in (c_program, cmake_program):
        dynamic = subprocess.run(["readelf", "-d", str(program)], capture_output=True, text=True).stdout
        assert str(paths.lib_dir()) in dynamic, dynamic


def test_a_program_reports_a_missing_model_clearly(c_program):
    result = run_program([c_program, "/nonexistent/model.onnx", 1])
    assert result.returncode != 0
    assert "/nonexistent/model.onnx" in result.stdout
