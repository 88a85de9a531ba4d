"""jb::Runtime from C++ and jb_runtime from C, built against the installed package and run without Python:
sharing inside one runtime and not across, each executor kind running the asynchronous work where it says,
the threads a runtime starts, and close() waiting for the runs in flight (tests/native/cpp/runtime*.c*)."""
from __future__ import annotations

import pytest

from juno_bridge import paths
from helpers.native_build import CPP_TESTS, build, require_tool, run_program, write_mlp_model


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_mlp_model(tmp_path_factory.mktemp("model") / "mlp.onnx", features=8)


def checks_of(result) -> list[str]:
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines and lines[-1].endswith(" 0 failed"), result.stdout
    return [line for line in lines if line.startswith(("PASS", "FAIL"))]


def test_cpp_runtime(model, tmp_path):
    require_tool("g++")
    exe = tmp_path / "runtime_cpp"
    build(["g++", "-O1", "-g0", "-Wall", "-Wextra", "-pthread", *paths.cflags(), CPP_TESTS / "runtime.cpp",
           "-o", exe, *paths.libs()])
    checks = checks_of(run_program([exe, model]))
    assert len(checks) == 30 and all(c.startswith("PASS") for c in checks), checks
    assert "PASS close(): returned after the 4 runs in flight finished" in checks


def test_c_runtime(model, tmp_path):
    require_tool("gcc")
    exe = tmp_path / "runtime_c_abi"
    build(["gcc", "-std=c11", "-O1", "-g0", "-Wall", "-Wextra", *paths.cflags("c"), CPP_TESTS / "runtime_c_abi.c",
           "-o", exe, *paths.libs()])
    checks = checks_of(run_program([exe, model]))
    assert len(checks) == 27 and all(c.startswith("PASS") for c in checks), checks
