"""`juno-bridge serve` itself: the command serves on loopback until SIGTERM and leaves nothing behind; the
model repository it writes; served names; the log filter."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers.triton_servers import shm_entries, tiny_server

import tritonclient.grpc as grpcclient  # noqa: E402

import juno_bridge as jb  # noqa: E402
from juno_bridge.demo.models.builtin import builtin_input, builtin_model  # noqa: E402
from juno_bridge.serve import ServedModel, filtered_log, free_port, served_name, write_repository  # noqa: E402

pytestmark = pytest.mark.triton


def test_the_serve_command_answers_until_sigterm_and_leaves_nothing(tmp_path):
    before = shm_entries()
    port = free_port()
    log = tmp_path / "server.log"
    process = subprocess.Popen([sys.executable, "-m", "juno_bridge.cli", "serve", str(builtin_model("tiny")),
                                "--port", str(port), "--name", "tiny", "--log", str(log)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = process.stdout.readline()  # printed once the server and its models are ready
        assert f"serving tiny at 127.0.0.1:{port}" in line, line + process.stdout.read()
        x = builtin_input("tiny", 3)
        remote = jb.Session(f"triton://127.0.0.1:{port}/tiny")
        np.testing.assert_array_equal(remote.run({"x": x})["y"], jb.Session(str(builtin_model("tiny"))).run({"x": x})["y"])
        remote.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    with pytest.raises(Exception):
        with grpcclient.InferenceServerClient(f"127.0.0.1:{port}") as client:
            client.is_server_live(client_timeout=1)
    assert "PyCapsule_GetPointer" not in "\n".join(filtered_log(log.read_text().splitlines()))
    deadline = time.monotonic() + 5
    while shm_entries() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert shm_entries() - before == set()


def test_the_repository_declares_the_models_signature_with_dynamic_batching(tmp_path):
    write_repository(tmp_path, [ServedModel("juno", str(builtin_model("juno")), {})], max_batch=32, queue_delay_us=250)
    config = (tmp_path / "juno" / "config.pbtxt").read_text()
    assert "max_batch_size: 32" in config
    assert 'name: "pmt" data_type: TYPE_FP32 dims: [ 2, 17612 ]' in config
    assert 'name: "y" data_type: TYPE_FP32 dims: [ 4 ]' in config
    assert "max_queue_delay_microseconds: 250" in config
    assert (tmp_path / "juno" / "1" / "model.py").exists()


def test_missing_models_and_clashing_names_are_refused(tmp_path):
    with pytest.raises(jb.ModelLoadError, match="does not exist"):
        write_repository(tmp_path, [ServedModel("x", str(tmp_path / "missing.onnx"), {})])
    tiny = str(builtin_model("tiny"))
    with pytest.raises(jb.InvalidArgumentError, match="same name"):
        write_repository(tmp_path, [ServedModel("a", tiny, {}), ServedModel("a", tiny, {})])


def test_a_bfloat16_model_is_refused_by_name_not_served(tmp_path):
    from helpers import onnx_models

    path = onnx_models.save(onnx_models.bfloat16_io(), tmp_path, "bf16")
    with pytest.raises(jb.ModelLoadError, match=r"input 'b' is tensor\(bfloat16\), which juno-bridge serve does not"):
        write_repository(tmp_path / "repo", [ServedModel("bf16", str(path), {})])


@given(stem=st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,20}", fullmatch=True),
       suffix=st.sampled_from([".onnx", ".pt", ".pt2"]))
def test_a_model_file_is_served_under_its_stem(stem, suffix):
    assert served_name(f"/some/dir/{stem}{suffix}") == stem
    assert served_name(f"python:pkg.mod:{stem}") == stem


@given(noise=st.integers(0, 3), other=st.lists(st.from_regex(r"I1125 [a-z ]{1,20}", fullmatch=True), max_size=5))
def test_the_log_filter_drops_only_the_capsule_noise(noise, other):
    capsule = ["Traceback (most recent call last):", '  File "model.py", line 58, in execute',
               "    tensors = [pb_utils.Tensor.from_dlpack(n, y)]",
               "ValueError: PyCapsule_GetPointer called with incorrect name"]
    real = ["Traceback (most recent call last):", '  File "model.py", line 3', "RuntimeError: a real failure"]
    lines = capsule * noise + other + real + capsule
    assert filtered_log(lines) == other + real


def test_a_source_checkout_in_the_callers_directory_does_not_shadow_the_installed_package(tmp_path,
                                                                                        monkeypatch):
    """The stubs run in the server's own directory: a `juno_bridge/` beside the caller (as in the repo
    root) must not be what the model instances import."""
    fake = tmp_path / "juno_bridge"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('the wrong juno_bridge was imported')\n")
    monkeypatch.chdir(tmp_path)
    server = tiny_server()
    try:
        x = np.ones((2, 8), np.float32)
        remote = jb.Session(f"triton://{server.address}/tiny").run({"x": x})["y"]
        np.testing.assert_array_equal(remote, jb.Session(builtin_model("tiny")).run({"x": x})["y"])
    finally:
        server.stop()
