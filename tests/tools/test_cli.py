"""The juno-bridge command: what a user types, in a subprocess, as they would."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import juno_bridge as jb
from juno_bridge.demo.models.builtin import builtin_model

EXE = [sys.executable, "-m", "juno_bridge.cli"]


def cli(*args, check=False):
    done = subprocess.run([*EXE, *map(str, args)], capture_output=True, text=True, timeout=300)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def test_help_lists_the_commands():
    out = cli("--help", check=True).stdout
    for command in ("info", "config", "bench", "run"):
        assert command in out
    assert "Exit codes" in out


def test_no_command_is_a_usage_error():
    assert cli().returncode == 2


def test_info_reports_the_loaded_onnxruntime():
    info = json.loads(cli("info", "--json", check=True).stdout)
    ort = jb.onnxruntime_info()
    assert info["juno-bridge"] == jb.__version__
    assert info["onnxruntime"]["version"] == ort["version"] and info["onnxruntime"]["api_version"] >= 16
    assert "CPUExecutionProvider" in info["onnxruntime"]["providers"]
    assert Path(info["include dir"], "juno_bridge", "session.hpp").exists()
    assert Path(info["lib dir"], "libjuno_bridge.so").exists()


def test_config_prints_flags_a_compiler_accepts():
    out = cli("config", "--cflags", "--libs", check=True).stdout
    assert "-I" in out and "-ljuno_bridge" in out
    cmake = Path(cli("config", "--cmake-dir", check=True).stdout.strip())
    assert (cmake / "juno_bridgeConfig.cmake").exists()
    assert cli("config").returncode == 2


@pytest.mark.parametrize("suffix", [".npz", pytest.param(".h5", marks=pytest.mark.hdf5)])
def test_run_round_trips_an_event_file(tmp_path, suffix):
    model = builtin_model("tiny")
    x = np.random.default_rng(0).random((1000, 8), dtype=np.float32)
    src = tmp_path / f"events{suffix}"
    dst = tmp_path / f"out{suffix}"
    if suffix == ".npz":
        np.savez(src, x=x)
    else:
        import h5py
        with h5py.File(src, "w") as f:
            f["x"] = x
    done = cli("run", model, "--input", src, "--output", dst, "--batch-size", 300, "--quiet", check=True)
    assert "1000 events" in done.stdout
    if suffix == ".npz":
        y = np.load(dst)["y"]
    else:
        import h5py
        with h5py.File(dst) as f:
            y = f["y"][...]
    expected = jb.Session(model).run({"x": x})["y"]
    assert np.array_equal(y, expected)
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]  # atomic write left nothing behind


def test_errors_are_one_clear_line_with_a_meaningful_exit_code(tmp_path):
    model = builtin_model("tiny")
    missing = cli("run", tmp_path / "nope.onnx", "--input", tmp_path / "x.npz", "--output", tmp_path / "y.npz")
    assert missing.returncode == 1
    assert missing.stderr.strip().count("\n") == 0 and "nope.onnx" in missing.stderr
    assert "Traceback" not in missing.stderr
    np.savez(tmp_path / "wrong.npz", z=np.zeros((3, 8), np.float32))
    wrong = cli("run", model, "--input", tmp_path / "wrong.npz", "--output", tmp_path / "y.npz")
    assert wrong.returncode == 1 and "lacks the model input(s) x" in wrong.stderr
    unavailable = cli("info", "--onnxruntime", tmp_path / "libnothing.so")
    assert unavailable.returncode == 0 and "unavailable" in unavailable.stdout
    debug = cli("--debug", "run", tmp_path / "nope.onnx", "--input", tmp_path / "x.npz", "--output", tmp_path / "y.npz")
    assert "Traceback" in debug.stderr
