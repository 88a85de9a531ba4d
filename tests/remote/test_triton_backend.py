"""The triton backend against a real Triton server on loopback, started by `juno-bridge serve`'s code:
remote outputs equal local ones for ONNX, torch and Python models; the Session API is the same."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import optional
from helpers.async_runs import check_in_flight
from helpers.native_build import CPP_TESTS
from helpers.triton_servers import client_regions, shm_entries  # noqa: F401  (skips without tritonclient)

import tritonclient.grpc as grpcclient  # noqa: E402

import juno_bridge as jb  # noqa: E402
from juno_bridge.demo.models.builtin import builtin_input, builtin_model  # noqa: E402
from juno_bridge.serve import TritonServer  # noqa: E402

pytestmark = pytest.mark.triton
N = 16  # pyalgos' PMTs


def torch_pt() -> str | None:
    if optional.missing("torch"):
        return None  # its test is skipped (or fails under JUNO_BRIDGE_REQUIRE_ALL=1) by its marker
    from helpers import torch_models
    return str(torch_models.tiny(".pt"))


@pytest.fixture(scope="module")
def server():
    models = {"tiny": str(builtin_model("tiny")), "juno": str(builtin_model("juno")),
              "linear": "python:helpers.pyalgos:linear"}
    pt = torch_pt()
    if pt:
        models["tiny_pt"] = pt
    # A queue delay long enough that concurrent single-event requests meet in the batcher.
    with TritonServer(list(models.values()), names=list(models), queue_delay_us=5000) as s:
        yield s, models


def local_and_remote(server, name):
    s, models = server
    return jb.Session(models[name], intra_op_threads=1), jb.Session(s.url(name))


def feed_for(session, batch, seed=0):
    rng = np.random.default_rng(seed)
    return {t.name: rng.standard_normal((batch, *t.shape[1:])).astype(t.dtype) for t in session.inputs()}


@pytest.mark.parametrize("name", ["tiny", "juno", "linear", pytest.param("tiny_pt", marks=pytest.mark.torch)])
def test_remote_outputs_equal_local_for_onnx_torch_and_python_models(server, name):
    local, remote = local_and_remote(server, name)
    for batch in (1, 7):
        feed = feed_for(local, batch, seed=batch)
        expected, got = local.run(feed), remote.run(feed)
        assert set(got) == set(expected)
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key])
            assert np.any(got[key] != 0)  # numbers really arrived (numpy 2's silent zeros in the stub)


def test_inputs_outputs_and_metadata_come_from_the_server(server):
    local, remote = local_and_remote(server, "juno")
    assert [(t.name, t.dtype, t.shape) for t in remote.inputs()] == [("pmt", np.dtype("float32"), (-1, 2, 17612))]
    assert [(t.name, t.dtype, t.shape) for t in remote.outputs()] == [("y", np.dtype("float32"), (-1, 4))]
    custom = remote.metadata()["custom"]
    assert custom["triton_model"] == "juno" and custom["triton_server"] == server[0].address


def test_run_with_out_writes_into_the_callers_buffer(server):
    local, remote = local_and_remote(server, "juno")
    x = builtin_input("juno", 5)
    y = np.full((5, 4), np.nan, np.float32)
    address = y.ctypes.data
    remote.run({"pmt": x}, out={"y": y})
    assert y.ctypes.data == address
    np.testing.assert_array_equal(y, local.run({"pmt": x})["y"])


def test_shared_memory_regions_live_with_the_session_and_go_with_close(server):
    s, _ = server
    before = client_regions()
    remote = jb.Session(s.url("juno"))
    remote.run({"pmt": builtin_input("juno", 2)})
    mine = client_regions() - before
    assert len(mine) == 2  # one input and one output region
    with grpcclient.InferenceServerClient(s.address) as client:
        registered = {r["name"] for r in client.get_system_shared_memory_status(as_json=True)["regions"].values()}
    assert mine <= registered
    remote.close()
    assert not (client_regions() & mine)


def test_plain_grpc_without_shared_memory_gives_the_same_numbers(server):
    s, models = server
    x = builtin_input("juno", 3)
    plain = jb.Session(s.url("juno"), config={"shared_memory": "off"})
    before = client_regions()
    np.testing.assert_array_equal(plain.run({"pmt": x})["y"], jb.Session(models["juno"]).run({"pmt": x})["y"])
    assert client_regions() == before


def test_dynamic_batching_merges_concurrent_requests(server):
    s, _ = server
    remote = jb.Session(s.url("tiny"))
    with grpcclient.InferenceServerClient(s.address) as client:
        def counts():
            stats = client.get_inference_statistics("tiny", as_json=True)["model_stats"][0]
            return int(stats.get("inference_count", 0)), int(stats.get("execution_count", 0))

        inferences0, executions0 = counts()
        errors = []

        def worker(seed):
            try:
                for k in range(10):
                    remote.run({"x": builtin_input("tiny", 1, seed=seed * 100 + k)})
            except Exception as err:  # noqa: BLE001 - reported below
                errors.append(err)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        inferences, executions = counts()
    assert inferences - inferences0 == 80
    assert executions - executions0 < 80 // 2, f"{executions - executions0} executions for 80 requests"


def test_a_bad_input_is_refused_before_the_network_naming_the_input(server):
    _, remote = local_and_remote(server, "tiny")
    with pytest.raises(jb.InputTypeError, match=r"input 'x'.*float32.*float64"):
        remote.run({"x": np.zeros((2, 8), np.float64)})
    with pytest.raises(jb.InputError, match=r"input 'x'.*shape"):
        remote.run({"x": np.zeros((2, 9), np.float32)})


def test_unknown_model_names_server_and_model(server):
    s, _ = server
    with pytest.raises(jb.ModelLoadError, match=rf"triton server {s.address} model 'nope'.*does not serve"):
        jb.Session(f"triton://{s.address}/nope")


@pytest.mark.parametrize("url", ["triton://127.0.0.1/tiny", "triton://127.0.0.1:8001/", "triton://:8001/x"])
def test_malformed_urls_are_refused(url):
    with pytest.raises(jb.InvalidArgumentError, match="expected 'triton://host:port/model'"):
        jb.Session(url)


@pytest.fixture(scope="module")
def linear_sessions(server):
    local, remote = local_and_remote(server, "linear")
    yield local, remote
    remote.close()


@settings(max_examples=12, deadline=None)
@given(batch=st.integers(1, 64), seed=st.integers(0, 2**32 - 1))
def test_remote_equals_local_for_any_batch_up_to_the_servers_max(linear_sessions, batch, seed):
    local, remote = linear_sessions
    x = np.random.default_rng(seed).standard_normal((batch, 2 * N)).astype(np.float32)
    np.testing.assert_array_equal(remote.run({"x": x})["y"], local.run({"x": x})["y"])


@pytest.mark.cxx
def test_a_cpp_program_reaches_the_server_through_the_same_session(server, tmp_path):
    import os
    import subprocess
    import sys

    from juno_bridge import paths

    s, models = server
    exe = tmp_path / "run_model_cpp"
    subprocess.run(["g++", "-std=c++17", "-O1", "-g0", str(CPP_TESTS / "run_model.cpp"), "-o",
                    str(exe), *paths.cflags(), *paths.libs()], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME",)}
    pkg = Path(jb.__file__).resolve().parent
    if pkg.parent.name != "site-packages":  # an in-place build: name the venv as an activated one would
        env["PYTHONPATH"] = str(pkg.parent)
        env["VIRTUAL_ENV"] = sys.prefix

    def values(model):
        done = subprocess.run([str(exe), model, "3"], capture_output=True, text=True, timeout=120, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        return [line for line in done.stdout.splitlines() if line.startswith("values")]

    remote, local = values(s.url("tiny")), values(models["tiny"])
    assert remote and remote == local


@pytest.mark.parametrize("shared_memory", ["on", "off"])
@pytest.mark.parametrize("name", ["juno", "linear"])
def test_hundred_run_async_in_flight_equal_run(server, name, shared_memory):
    """Through the Triton client's async_infer (async_mode "native"), with and without shared memory."""
    remote = jb.Session(server[0].url(name), config={"shared_memory": shared_memory})
    assert remote.async_mode == "native"
    check_in_flight(remote, [feed_for(remote, 4, seed=k) for k in range(4)])
    remote.close()


def test_a_request_the_server_refuses_fails_its_run_async_future_and_the_session_runs_on(server):
    s, models = server
    remote = jb.Session(s.url("tiny"))
    too_big = builtin_input("tiny", s.max_batch + 1)  # the core passes it (B is symbolic); the server does not
    futures = [remote.run_async({"x": too_big}) for _ in range(10)]
    for f in futures:
        with pytest.raises(jb.RunError, match=f"triton server {s.address} model 'tiny'.*batch"):
            f.result(timeout=60)
    x = builtin_input("tiny", 3)
    np.testing.assert_array_equal(remote.run_async({"x": x}).result(timeout=60)["y"],
                                  jb.Session(models["tiny"]).run({"x": x})["y"])
    remote.close()
