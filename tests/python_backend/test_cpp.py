"""C++ programs built against the installed package: a Python algorithm through `python:` from a C++
host (one thread and two), and an ONNX-only program that never loads libpython."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

import juno_bridge as jb
from helpers import pyalgos
from helpers.native_build import CPP_TESTS

ALGORITHMS = Path(pyalgos.__file__).parent  # as `pyalgos` on the hosts' PYTHONPATH
PKG = Path(jb.__file__).resolve().parent
CXX = os.environ.get("CXX", "g++")

pytestmark = pytest.mark.cxx


def host_env():
    """What a C++ host's environment holds: our test algorithms on PYTHONPATH, nothing about juno_bridge or
    numpy, which the plugin finds itself in the site-packages it is installed in. An in-place build has
    no such site-packages, so there (only) the venv is named as an activated venv would."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONPATH"] = str(ALGORITHMS)
    if PKG.parent.name != "site-packages":
        env["PYTHONPATH"] += os.pathsep + str(PKG.parent)
        env["VIRTUAL_ENV"] = sys.prefix
    return env


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    out = tmp_path_factory.mktemp("cpp")

    def compile_program(name):
        exe = out / name
        subprocess.run([CXX, "-std=c++17", "-O1", "-g0", "-pthread", str(CPP_TESTS / f"{name}.cpp"), "-o", str(exe),
                        f"-I{PKG / 'include'}", f"-L{PKG / 'lib'}", "-ljuno_bridge", f"-Wl,-rpath,{PKG / 'lib'}"],
                       check=True)
        return exe

    return compile_program


def run(exe, *args, env=None):
    result = subprocess.run([str(exe), *map(str, args)], env={**host_env(), **(env or {})}, capture_output=True,
                            text=True, timeout=120)
    return result.returncode, result.stdout + result.stderr


def test_a_cpp_host_runs_a_python_algorithm_and_reads_its_results(build):
    rc, out = run(build("python_algorithm"), "pyalgos:reco")
    assert rc == 0, out
    assert "backend python" in out and "input read in place: yes" in out and out.rstrip().endswith("OK")


def test_two_cpp_threads_share_a_python_session_without_deadlock(build):
    rc, out = run(build("python_two_threads"))
    assert rc == 0, out
    assert "runs 600, bad 0" in out


def test_a_python_algorithms_freed_temporaries_are_reused_not_faulted_in_again_every_call(build):
    # glibc gave the top of its heap back after each call (the temporaries exceed its trim threshold) and faulted
    # it in again on the next: twice the time of a torch module's call from C++. The plugin keeps it for reuse.
    rc, out = run(build("python_scratch_memory"))
    assert rc == 0, out
    assert "freed memory reused: yes" in out, out


@pytest.mark.parametrize("env", [{"JUNO_BRIDGE_TUNE_MALLOC": "0"},
                                 {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=131072"}],
                         ids=["turned-off", "configured-by-the-environment"])
def test_malloc_is_left_alone_when_turned_off_or_configured_by_the_environment(build, env):
    rc, out = run(build("python_scratch_memory"), env=env)
    assert rc == 0, out
    assert "freed memory reused: no" in out, out


def test_the_core_library_does_not_link_libpython():
    needed = subprocess.run(["readelf", "-d", str(PKG / "lib" / "libjuno_bridge.so")], capture_output=True,
                            text=True, check=True).stdout
    assert "NEEDED" in needed and "libpython" not in needed
    plugin = subprocess.run(["readelf", "-d", str(PKG / "lib" / "libjuno_bridge_python.so")], capture_output=True,
                            text=True, check=True).stdout
    assert "libpython" in plugin and "libjuno_bridge.so" not in plugin


def test_an_onnx_only_cpp_program_never_loads_libpython(build, tmp_path):
    import onnx  # a dependency of juno-bridge
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 32])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 32])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "relu.onnx")
    rc, out = run(build("onnx_without_python"), tmp_path / "relu.onnx")
    assert rc == 0, out
    assert "backend onnxruntime" in out and "libpython mapped: no" in out
