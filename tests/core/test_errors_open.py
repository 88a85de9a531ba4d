"""Opening a session badly: missing or corrupt models, invalid options, absent execution providers, and
runtime libraries that are missing or not ONNX Runtime. The runtime's own error code is kept."""
from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import juno_bridge as jb

CORE_LIBRARY = Path(jb.__file__).parent / "lib" / "libjuno_bridge.so"
ORT_NO_SUCHFILE, ORT_INVALID_PROTOBUF = 3, 7  # OrtErrorCode values


def raises(error, *fragments):
    return pytest.raises(error, match="(?s)" + "".join(f"(?=.*{re.escape(f)})" for f in fragments))


def test_missing_model_file(tmp_path):
    path = tmp_path / "absent.onnx"
    with raises(jb.ModelLoadError, f"model file '{path}' does not exist", "NO_SUCHFILE") as info:
        jb.Session(path)
    assert info.value.backend_code == ORT_NO_SUCHFILE
    assert not isinstance(info.value, jb.InputError)
    assert str(info.value).count(str(path)) == 1, str(info.value)  # said once, not the runtime's twice


def test_the_model_name_default_is_the_packages_default_model():
    from juno_bridge.demo.models import default

    by_name, by_path = jb.Session("default"), jb.Session(default.onnx_model())
    assert by_name._stats()["backend_id"] == by_path._stats()["backend_id"]  # the same model: one backend session
    pmt = np.random.default_rng(1).poisson(0.3, (2, 2, 17612)).astype(np.float32)
    for name, value in by_name.run({"pmt": pmt}).items():
        np.testing.assert_array_equal(value, by_path.run({"pmt": pmt})[name])


def test_garbage_model_file(tmp_path):
    path = tmp_path / "garbage.onnx"
    path.write_bytes(b"\x00\xffnot a model at all\x13" * 50)
    with raises(jb.ModelLoadError, str(path), "INVALID_PROTOBUF") as info:
        jb.Session(path)
    assert info.value.backend_code == ORT_INVALID_PROTOBUF


def test_truncated_model_file_and_bytes(tmp_path, add_f32):
    data = add_f32.read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    with raises(jb.ModelLoadError, str(truncated)) as info:
        jb.Session(truncated)
    assert info.value.backend_code == ORT_INVALID_PROTOBUF
    with raises(jb.ModelLoadError, f"{len(data) // 2} bytes in memory") as info:
        jb.Session(data[: len(data) // 2])
    assert info.value.backend_code == ORT_INVALID_PROTOBUF


def test_empty_bytes_and_empty_file(tmp_path):
    with raises(jb.ModelLoadError, "empty", "0 bytes"):
        jb.Session(b"")
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(jb.ModelLoadError) as info:
        jb.Session(empty)
    assert str(empty) in str(info.value)


def test_directory_instead_of_a_model(tmp_path):
    with raises(jb.ModelLoadError, str(tmp_path)):
        jb.Session(tmp_path)


def test_model_of_the_wrong_type():
    with raises(jb.InvalidArgumentError, "path or bytes", "int"):
        jb.Session(17)


@pytest.mark.parametrize("options, fragments", [
    ({"optimization": "fast"}, ("optimization", "disable, basic, extended, all", "'fast'")),
    ({"intra_op_threads": -1}, ("intra_op_threads", "non-negative", "-1")),
    ({"inter_op_threads": -3}, ("inter_op_threads", "non-negative", "-3")),
    ({"intra_op_threads": "two"}, ("intra_op_threads", "'two'")),
    ({"intra_op_threads": 1.5}, ("intra_op_threads", "1.5")),
    ({"log_level": "loud"}, ("log_level", "verbose, info, warning, error, fatal", "'loud'")),
    ({"execution_mode": "wild"}, ("execution_mode", "sequential or parallel", "'wild'")),
    ({"providers": None}, ("providers", "None")),
    ({"providers": [1]}, ("providers", "[1]")),
    ({"onnxruntime": 3}, ("onnxruntime", "library path", "3")),
], ids=lambda v: "-".join(v) if isinstance(v, dict) else None)
def test_invalid_option_is_named(add_f32, options, fragments):
    with raises(jb.InvalidArgumentError, *fragments) as info:
        jb.Session(add_f32, **options)
    assert isinstance(info.value, ValueError)


def test_valid_options_open_and_run(add_f32):
    x = np.ones((2, 4), np.float32)
    for options in ({"optimization": "disable", "log_level": "error"}, {"optimization": "basic", "intra_op_threads": 2},
                    {"optimization": "extended", "execution_mode": "parallel", "inter_op_threads": 2},
                    {"providers": "cpu"}, {"providers": ["CPUExecutionProvider"]}):
        with jb.Session(add_f32, **options) as s:
            np.testing.assert_array_equal(s.run([x, x])["c"], 2)


# Execution providers ONNX Runtime releases ship in one build or another (short names, as Session takes them).
KNOWN_PROVIDERS = ("cuda", "tensorrt", "rocm", "migraphx", "openvino", "dnnl", "coreml", "qnn", "vitisai", "webgpu")


def test_unavailable_provider_names_it_and_lists_the_available_ones(add_f32, caplog):
    # providers is an order of preference: a provider this runtime lacks is skipped, and the log says
    # why in the words the error uses under require_providers=True. Which one is absent depends on the
    # wheel (onnxruntime-gpu has CUDA): the first known provider the runtime does not list.
    available = jb.onnxruntime_info()["providers"]
    assert "CPUExecutionProvider" in available
    offered = {name.removesuffix("ExecutionProvider").lower() for name in available}
    absent = next(name for name in KNOWN_PROVIDERS if name not in offered)
    fragments = (f"'{absent}'", "not available", jb.onnxruntime_info()["version"], *available)
    with caplog.at_level(logging.WARNING, logger="juno_bridge.providers"):
        with jb.Session(add_f32, providers=(absent, "cpu")) as s:
            assert s.providers == ["cpu"]
            x = np.ones((2, 3), np.float32)
            np.testing.assert_array_equal(s.run([x, x])["c"], 2)
    logged = [r.getMessage() for r in caplog.records if r.name == "juno_bridge.providers"]
    assert len(logged) == 1 and all(f in logged[0] for f in fragments + ("skipped", "uses cpu")), logged
    with raises(jb.BackendUnavailableError, *fragments):
        jb.Session(add_f32, providers=(absent, "cpu"), require_providers=True)


def test_unknown_backend_is_unavailable(add_f32):
    with raises(jb.BackendUnavailableError, "unknown backend 'nope'", "libjuno_bridge_nope.so", "onnxruntime",
                "python"):
        jb.Session(add_f32, backend="nope")


@pytest.mark.parametrize("library", ["missing", "libc", "core"])
def test_onnxruntime_option_naming_a_library_that_is_not_onnxruntime(add_f32, tmp_path, library):
    path, fragments = not_onnxruntime(library, tmp_path)
    with raises(jb.BackendUnavailableError, str(path), *fragments):
        jb.Session(add_f32, onnxruntime=path)
    with raises(jb.BackendUnavailableError, str(path), *fragments):
        jb.onnxruntime_info(path)


def not_onnxruntime(kind, tmp_path):
    """A path that must not load as ONNX Runtime, and what its error must say."""
    if kind == "missing":
        return tmp_path / "libonnxruntime.so.1.99.0", ("does not exist",)
    if kind == "libc":
        # A real shared library that is not ONNX Runtime: the C library this very process has mapped.
        with open("/proc/self/maps") as maps:
            found = sorted({line.split()[-1] for line in maps if "/libc.so" in line or "/libc-" in line})
        assert found, "libc is not mapped?"
        return Path(found[0]), ("not an ONNX Runtime library", "OrtGetApiBase")
    return CORE_LIBRARY, ("not an ONNX Runtime library", "OrtGetApiBase")


# JUNO_BRIDGE_ONNXRUNTIME is read once per process (the loaded runtime is cached): a fresh interpreter each.
CHILD = """
import json, sys
import numpy as np
import juno_bridge as jb
result = {}
try:
    s = jb.Session(sys.argv[1], intra_op_threads=1)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    result["c"] = s.run({"a": x, "b": x})["c"].tolist()
    result["info"] = jb.onnxruntime_info()
except jb.Error as e:
    result["error"] = [type(e).__name__, str(e), e.backend_code]
print(json.dumps(result))
"""


def run_child(model, library) -> dict:
    env = dict(os.environ, JUNO_BRIDGE_ONNXRUNTIME=str(library))
    proc = subprocess.run([sys.executable, "-c", CHILD, str(model)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr  # an error, never a crash
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("library", ["missing", "libc", "core"])
def test_environment_variable_naming_a_library_that_is_not_onnxruntime(add_f32, tmp_path, library):
    path, fragments = not_onnxruntime(library, tmp_path)
    result = run_child(add_f32, path)
    assert result["error"][0] == "BackendUnavailableError"
    for fragment in (str(path), *fragments):
        assert fragment in result["error"][1]


def test_environment_variable_naming_the_default_library_works(add_f32):
    default = jb.onnxruntime_info()["path"]
    result = run_child(add_f32, default)
    assert result["c"] == [[0, 2, 4], [6, 8, 10]]
    assert result["info"]["path"] == default
