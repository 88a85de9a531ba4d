"""`juno-bridge serve` itself: the command serves on loopback until SIGTERM and leaves nothing behind; the
model repository it writes; served names; the log filter."""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers.triton_servers import kill, shm_entries, tiny_server

import tritonclient.grpc as grpcclient  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

import juno_bridge as jb  # noqa: E402
from juno_bridge.demo.models.builtin import builtin_input, builtin_model  # noqa: E402
from juno_bridge.serve import ServedModel, filtered_log, free_port, served_name, write_repository  # noqa: E402
from juno_bridge.serve.leftovers import children, cmdline  # noqa: E402

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
        np.testing.assert_array_equal(remote.run({"x": x})["y"],
                                      jb.Session(str(builtin_model("tiny"))).run({"x": x})["y"])
        remote.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    with pytest.raises(InferenceServerException):
        with grpcclient.InferenceServerClient(f"127.0.0.1:{port}") as client:
            client.is_server_live(client_timeout=1)
    assert "PyCapsule_GetPointer" not in "\n".join(filtered_log(log.read_text().splitlines()))
    # The log lives where it was asked to: the model repository's folder goes whole, not left empty.
    assert list(Path(tempfile.gettempdir()).glob(f"juno-bridge-serve-{process.pid}-*")) == []
    deadline = time.monotonic() + 5
    while shm_entries() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert shm_entries() - before == set()


def serve(*args: str) -> tuple[subprocess.Popen, int]:
    """`juno-bridge serve ARGS` on a free port, once it says it serves."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "juno_bridge.cli", "serve", *args, "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if f"at 127.0.0.1:{port}" not in line:
        process.kill()
        raise AssertionError(line + process.stderr.read())
    return process, port


def test_the_shipped_default_model_serves_its_rank_1_energy_as_it_is():
    """`energy` is [B] in the model: served as [B] (declared [1], reshaped to []), equal to the local run."""
    from juno_bridge.demo.models import default

    process, port = serve(str(default.ONNX), "--name", "default")
    try:
        remote = jb.Session(f"triton://127.0.0.1:{port}/default")
        local = jb.Session(str(default.ONNX), intra_op_threads=1)
        assert {t.name: t.shape for t in remote.outputs()} == {t.name: t.shape for t in local.outputs()}
        assert {t.name: t.shape for t in remote.outputs()}["energy"] == (-1,)
        rng = np.random.default_rng(7)
        for batch in (1, 5):
            pmt = np.stack([rng.poisson(0.3, (batch, 17612)), rng.uniform(0, 300, (batch, 17612))], 1)
            got, want = remote.run({"pmt": pmt.astype(np.float32)}), local.run({"pmt": pmt.astype(np.float32)})
            assert got["energy"].shape == (batch,)
            for name in want:
                np.testing.assert_array_equal(got[name], want[name])
        remote.close()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_the_repository_declares_the_models_signature_with_dynamic_batching(tmp_path):
    write_repository(tmp_path, [ServedModel("juno", str(builtin_model("juno")), {})], max_batch=32, queue_delay_us=250)
    config = (tmp_path / "juno" / "config.pbtxt").read_text()
    assert "max_batch_size: 32" in config
    assert 'name: "pmt" data_type: TYPE_FP32 dims: [ 2, 17612 ]' in config
    assert 'name: "y" data_type: TYPE_FP32 dims: [ 4 ]' in config
    assert "max_queue_delay_microseconds: 250" in config
    assert 'name: "juno_bridge_tag" data_type: TYPE_UINT64 dims: [ 1 ]' in config
    assert (tmp_path / "juno" / "1" / "model.py").exists()


def test_a_rank_1_output_is_declared_without_a_dim_of_its_own(tmp_path):
    from juno_bridge.demo.models import default

    write_repository(tmp_path, [ServedModel("default", str(default.ONNX), {})])
    config = (tmp_path / "default" / "config.pbtxt").read_text()
    assert 'name: "energy" data_type: TYPE_FP32 dims: [ 1 ] reshape: { shape: [ ] }' in config
    assert 'name: "vertex" data_type: TYPE_FP32 dims: [ 3 ] }' in config


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


def test_every_shared_memory_region_is_readable_by_its_user_only():
    """Event inputs and outputs pass through /dev/shm: the server's regions (its python backend's) and
    the client's are 0600, as is the owner lock."""
    before = shm_entries()
    server = tiny_server()
    try:
        remote = jb.Session(server.url(), config={"shared_memory": "on"})
        remote.run({"x": np.ones((3, 8), np.float32)})
        new = shm_entries() - before
        server_regions = [n for n in new if n.startswith(server.shm_prefix)]
        client_regions = [n for n in new if n.startswith(f"jb{os.getpid()}x")]
        assert server_regions and len(client_regions) == 2, new
        modes = {n: stat.S_IMODE(os.stat(f"/dev/shm/{n}").st_mode) for n in server_regions + client_regions}
        assert modes == {n: 0o600 for n in modes}
        remote.close()
    finally:
        server.stop()


def test_serve_restarts_the_server_when_a_model_instance_dies():
    """Triton keeps a model whose python backend stub died "ready" while every call fails: `serve` sees
    the stub gone and restarts the server on the same port; a client (its shared memory registered with
    the old server) answers again."""
    tiny = str(builtin_model("tiny"))
    process, port = serve(tiny, "--name", "tiny")
    try:
        remote = jb.Session(f"triton://127.0.0.1:{port}/tiny", config={"timeout_s": "5", "shared_memory": "on"})
        x = builtin_input("tiny", 3)
        want = jb.Session(tiny).run({"x": x})["y"]
        np.testing.assert_array_equal(remote.run({"x": x})["y"], want)
        (server_pid,) = [p for p in children(process.pid) if "tritonserver" in cmdline(p)]
        stubs = [p for p in children(server_pid) if "triton_python_backend_stub" in cmdline(p)]
        assert stubs
        for pid in stubs:
            kill(pid)
        failures = []
        for _ in range(300):  # failures while the server restarts, then answers
            try:
                got = remote.run({"x": x})["y"]
                break
            except jb.Error as err:
                failures.append(str(err))
                time.sleep(0.1)
        else:
            raise AssertionError(f"no answer after the restart: {failures[-3:]}")
        np.testing.assert_array_equal(got, want)
        assert [p for p in children(process.pid) if "tritonserver" in cmdline(p)] != [server_pid]
        remote.close()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0
    assert "died: restarting the server at 127.0.0.1" in process.stderr.read()


def test_a_server_that_refuses_shared_memory_refuses_registration_and_clients_go_without(tmp_path):
    """Beyond loopback (or with --shared-memory off) nobody can have the server read or write a /dev/shm
    object through registration; a triton:// client asking for shared memory runs over plain gRPC."""
    from juno_bridge.serve import TritonServer

    beyond = TritonServer([str(builtin_model("tiny"))], host="0.0.0.0")
    assert not beyond.shared_memory and any("--grpc-restricted-protocol=shared-memory:" in a
                                            for a in beyond.command(Path("/triton")))
    beyond.stop()
    assert TritonServer([str(builtin_model("tiny"))]).shared_memory  # loopback: allowed by default
    own = f"jb{os.getpid()}x"
    server = tiny_server(shared_memory="off")
    try:
        victim = Path("/dev/shm") / f"jbtest{os.getpid()}_victim"  # a 0600 object of the server's user
        victim.write_bytes(b"\0" * 4096)
        try:
            victim.chmod(0o600)
            with grpcclient.InferenceServerClient(server.address) as client:
                with pytest.raises(Exception, match="protocol is restricted"):
                    client.register_system_shared_memory("victim", "/" + victim.name, 4096, client_timeout=5)
        finally:
            victim.unlink()
        remote = jb.Session(server.url(), config={"shared_memory": "on"})
        x = builtin_input("tiny", 3)
        want = jb.Session(str(builtin_model("tiny"))).run({"x": x})["y"]
        for _ in range(2):
            np.testing.assert_array_equal(remote.run({"x": x})["y"], want)
            np.testing.assert_array_equal(remote.run_async({"x": x}).result(timeout=30)["y"], want)
        remote.close()
        assert not [n for n in shm_entries() if n.startswith(own)]
    finally:
        server.stop()
