"""Execution providers as an order of preference, against the real onnxruntime-gpu wheel: its CUDA provider
is listed but, on a machine without CUDA, cannot initialise. The session then falls back to the CPU, logs
the provider it skipped and why, and says what it got; require_providers=True makes that an error."""
from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path

import numpy as np
import pytest

import juno_bridge as jb
from juno_bridge.demo.models.builtin import builtin_input, builtin_model
from helpers import jb_c

# CUDA initialises only on a machine with an NVIDIA GPU (and its driver); elsewhere it must fall back.
HAS_GPU = Path("/dev/nvidia0").exists() or bool(os.environ.get("JUNO_BRIDGE_TEST_GPU"))


@pytest.fixture(scope="module")
def juno_model() -> Path:
    return builtin_model("juno")


def test_gpu_wheel_lists_cuda(gpu_onnxruntime):
    providers = jb.onnxruntime_info(gpu_onnxruntime)["providers"]
    assert providers.index("CUDAExecutionProvider") < providers.index("CPUExecutionProvider")


def test_cuda_then_cpu_uses_the_first_that_initialises(gpu_onnxruntime, juno_model, caplog):
    x = builtin_input("juno", 16)
    with jb.Session(juno_model) as cpu:  # the environment's CPU wheel
        expected = cpu.run([x])
    with caplog.at_level(logging.WARNING, logger="juno_bridge.providers"):
        with jb.Session(juno_model, onnxruntime=gpu_onnxruntime, providers=("cuda", "cpu")) as s:
            got = s.run([x])
            used = s.providers
    logged = [r.getMessage() for r in caplog.records if r.name == "juno_bridge.providers"]
    if HAS_GPU:
        assert used == ["cuda", "cpu"] and not logged
        for name in expected:
            np.testing.assert_allclose(got[name], expected[name], rtol=1e-4, atol=1e-5)
    else:
        assert used == ["cpu"]
        assert len(logged) == 1, logged
        assert "execution provider 'cuda' skipped" in logged[0] and "CUDA" in logged[0] and "uses cpu" in logged[0]
        for name in expected:
            np.testing.assert_array_equal(got[name], expected[name])  # the same CPU kernels


@pytest.mark.skipif(HAS_GPU, reason="CUDA initialises here: nothing is skipped")
def test_require_providers_makes_the_skipped_provider_an_error(gpu_onnxruntime, juno_model):
    with pytest.raises(jb.BackendUnavailableError, match="(?s)execution provider 'cuda'.*require_providers.*CUDA"):
        jb.Session(juno_model, onnxruntime=gpu_onnxruntime, providers=("cuda", "cpu"), require_providers=True)


def test_providers_are_reported_in_order_and_cpu_is_always_last(gpu_onnxruntime, add_f32):
    with jb.Session(add_f32) as s:
        assert s.providers == ["cpu"]
    with jb.Session(add_f32, onnxruntime=gpu_onnxruntime, providers=["CPUExecutionProvider"]) as s:
        assert s.providers == ["cpu"]


def test_a_backend_without_providers_reports_none():
    with jb.Session("python:helpers.pyalgos:reco") as s:
        assert s.providers == []


@pytest.mark.skipif(HAS_GPU, reason="CUDA initialises here: nothing is skipped")
def test_c_abi_reports_the_providers_and_takes_require_providers(gpu_onnxruntime, add_f32):
    lib = jb_c.load()
    session = ctypes.c_void_p()
    for require, expected in (("0", jb_c.OK), ("1", jb_c.BACKEND_UNAVAILABLE)):
        options = lib.jb_options_new()
        try:
            for key, value in (("onnxruntime", str(gpu_onnxruntime)), ("providers", "cuda,cpu"),
                               ("require_providers", require)):
                assert lib.jb_options_set(options, key.encode(), value.encode()) == jb_c.OK, jb_c.last_error(lib)
            status = lib.jb_session_open(str(add_f32).encode(), options, ctypes.byref(session))
        finally:
            lib.jb_options_free(options)
        assert status == expected, jb_c.last_error(lib)
        if status == jb_c.OK:
            assert lib.jb_session_providers(session) == b"cpu"
            lib.jb_session_close(session)
        else:
            assert "require_providers" in jb_c.last_error(lib)[1]


@pytest.fixture(scope="module")
def with_azure() -> dict:
    """Session options that give a runtime with the Azure provider, which initialises anywhere (it takes
    over no operator here): the environment's own where it has Azure (the CPU wheel), else the CPU wheel
    installed apart (with onnxruntime-gpu in the environment, whose providers are TensorRT, CUDA and CPU)."""
    if "AzureExecutionProvider" in jb.onnxruntime_info()["providers"]:
        return {}
    from conftest import install_onnxruntime
    library = install_onnxruntime(jb.onnxruntime_info()["version"])
    assert "AzureExecutionProvider" in jb.onnxruntime_info(library)["providers"]
    return {"onnxruntime": library}


def test_a_provider_that_initialises_is_used_and_reported(add_f32, with_azure):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    with jb.Session(add_f32, providers=("azure", "cpu"), require_providers=True, **with_azure) as s:
        assert s.providers == ["azure", "cpu"]
        np.testing.assert_array_equal(s.run([x, x])["c"], 2 * x)


def test_a_broken_model_stays_the_models_error_under_require_providers(with_azure):
    # The session fails with the provider, and without it: the model is at fault, not the provider.
    with pytest.raises(jb.ModelLoadError, match="INVALID_PROTOBUF"):
        jb.Session(b"not a model", providers=("azure", "cpu"), require_providers=True, **with_azure)


def test_cuda_graph_is_refused_where_no_cuda_provider_is_asked_for(add_f32):
    with pytest.raises(jb.InvalidArgumentError, match="option 'cuda_graph' is for ONNX Runtime's CUDA provider, and "
                                                      "the session asks for providers cpu: open it with providers "
                                                      "cuda,cpu"):
        jb.Session(add_f32, cuda_graph=True)
    with pytest.raises(jb.InvalidArgumentError, match="option 'cuda_graph'.*the python backend does not take it"):
        jb.Session("python:helpers.pyalgos:reco", cuda_graph=True)


@pytest.mark.skipif(HAS_GPU, reason="CUDA initialises here: nothing is skipped")
def test_cuda_graph_where_cuda_is_skipped_runs_without_graphs_and_says_so(gpu_onnxruntime, add_f32, caplog):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    with caplog.at_level(logging.WARNING, logger="juno_bridge.providers"):
        with jb.Session(add_f32, onnxruntime=gpu_onnxruntime, providers=("cuda", "cpu"), cuda_graph=True) as s:
            assert s.providers == ["cpu"] and s.devices == ["cpu"]
            np.testing.assert_array_equal(s.run({"a": a, "b": a})["c"], 2 * a)
            with jb.Session(add_f32, onnxruntime=gpu_onnxruntime, providers=("cuda", "cpu")) as plain:
                assert plain._stats()["backend_id"] != s._stats()["backend_id"]  # graphs or not: not shared
    logged = [r.getMessage() for r in caplog.records if r.name == "juno_bridge.providers"]
    assert any("option cuda_graph: the CUDA provider is not in use" in m for m in logged), logged
    with pytest.raises(jb.BackendUnavailableError, match="execution provider 'cuda'"):
        jb.Session(add_f32, onnxruntime=gpu_onnxruntime, providers=("cuda", "cpu"), cuda_graph=True,
                   require_providers=True)


@pytest.mark.skipif(HAS_GPU, reason="CUDA initialises here: nothing is skipped")
def test_output_device_cuda_where_cuda_is_skipped_is_refused_never_given_host_memory(gpu_onnxruntime, add_f32):
    with pytest.raises(jb.BackendUnavailableError, match=r"option output_device=cuda: the CUDA provider is not in use, "
                                                         r"so outputs cannot be allocated in GPU memory .*; cuda was "
                                                         r"skipped: "):
        jb.Session(add_f32, onnxruntime=gpu_onnxruntime, providers=("cuda", "cpu"), output_device="cuda")
    with jb.Session(add_f32, onnxruntime=gpu_onnxruntime, providers=("cuda", "cpu")) as s:  # without it: opens
        assert s.providers == ["cpu"]
