"""The plugin SDK (plugin_sdk.hpp) and the plugin table of ABI 4, from programs and a plugin built here
against the installed headers only: the one exception translator, the one dtype table, and a plugin that
is given exactly the options it declares, while tables of ABI 2 and 3 still load and run (handed views laid
out as they were built with)."""
import gc
import importlib.util
import shutil
import subprocess
import sys

import numpy as np
import pytest

import juno_bridge as jb
from helpers.dlpack_fakes import OnDevice
from helpers.native_build import CPP_TESTS as SOURCES
from helpers.native_build import CXX, compile_sdk_program as compile_cxx

pytestmark = pytest.mark.skipif(shutil.which(CXX) is None, reason="no C++ compiler")


def test_one_translator_maps_every_exception_and_one_dtype_table_sizes_unknown_as_zero(tmp_path):
    exe = compile_cxx(SOURCES / "translate_errors.cpp", tmp_path / "translate_errors")
    done = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok   an int" in done.stdout and "ok   unknown dtype: size 0" in done.stdout
    assert done.stdout.rstrip().endswith("OK")


def received(session) -> dict:
    text = session.metadata()["custom"]["options"]
    return dict(item.split("=", 1) for item in text.split(";")) if text else {}


def test_a_plugin_is_given_only_the_options_it_declares(echo_plugins, monkeypatch):
    monkeypatch.setenv("JUNO_BRIDGE_PLUGIN_PATH", str(echo_plugins))
    s = jb.Session("anything", backend="optecho", intra_op_threads=3, optimization="basic", log_level="error",
                   config={"colour": "red"})
    assert received(s) == {"intra_op_threads": "3", "colour": "red"}
    x = np.arange(5, dtype=np.float32)
    y = np.empty(5, np.float32)
    s.run({"x": x}, out={"y": y})
    np.testing.assert_array_equal(y, 2 * x)


def test_an_option_the_plugin_does_not_declare_is_refused_by_name_listing_its_own(echo_plugins, monkeypatch):
    monkeypatch.setenv("JUNO_BRIDGE_PLUGIN_PATH", str(echo_plugins))
    with pytest.raises(jb.InvalidArgumentError) as e:
        jb.Session("anything", backend="optecho", config={"color": "red"})
    message = str(e.value)
    assert "unknown option 'color' for the optecho backend" in message
    assert "the optecho backend's own: colour" in message and "intra_op_threads" in message


def test_a_table_laid_out_as_abi_2_still_loads_and_gets_every_option_as_before(echo_plugins, monkeypatch):
    monkeypatch.setenv("JUNO_BRIDGE_PLUGIN_PATH", str(echo_plugins))
    s = jb.Session("anything", backend="optecho2", config={"anything_at_all": "1"})
    got = received(s)
    assert got["anything_at_all"] == "1"
    assert set(got) == {"intra_op_threads", "inter_op_threads", "optimization", "log_level", "execution_mode",
                        "anything_at_all"}


@pytest.mark.parametrize("name", ["optechoasync", "optechoasync3"])
def test_a_plugins_own_asynchronous_run_serves_run_async(echo_plugins, monkeypatch, name):
    monkeypatch.setenv("JUNO_BRIDGE_PLUGIN_PATH", str(echo_plugins))
    with jb.Session("anything", backend=name) as s:
        assert s.async_mode == "native"
        xs = [np.arange(k, k + 5, dtype=np.float32) for k in range(100)]
        ys = [np.empty(5, np.float32) for _ in range(100)]
        futures = [s.run_async({"x": xs[i]}, out={"y": ys[i]}) for i in range(100)]
        for i, f in enumerate(futures):
            assert f.result(timeout=60)["y"] is ys[i]
            np.testing.assert_array_equal(ys[i], 2 * xs[i])
        with pytest.raises(jb.InputError, match="echo: negative x"):
            s.run_async({"x": -np.ones(2, np.float32)}, out={"y": np.empty(2, np.float32)}).result(timeout=60)
        with pytest.raises(jb.InvalidArgumentError, match="echo: give y a buffer"):  # refused before it started
            s.run_async({"x": np.ones(2, np.float32)}).result(timeout=60)


@pytest.mark.parametrize("name", ["optecho", "optecho2", "optechoold"])  # optecho2: views of the old layout
def test_a_table_without_the_asynchronous_entries_runs_async_on_the_worker_pool(echo_plugins, monkeypatch, name):
    monkeypatch.setenv("JUNO_BRIDGE_PLUGIN_PATH", str(echo_plugins))
    with jb.Session("anything", backend=name) as s:
        assert s.async_mode == "pool"
        y = np.empty(3, np.float32)
        assert s.run_async({"x": np.ones(3, np.float32)}, out={"y": y}).result(timeout=60)["y"] is y
        np.testing.assert_array_equal(y, [2, 2, 2])


def test_a_plugin_naming_its_gpus_is_handed_their_memory_and_no_other(echo_plugins, monkeypatch):
    monkeypatch.setenv("JUNO_BRIDGE_PLUGIN_PATH", str(echo_plugins))
    x = np.arange(4, dtype=np.float32)
    with jb.Session("anything", backend="optechodev") as s:
        assert s.devices == ["cpu", "cuda:0"]
        y = np.zeros(4, np.float32)
        s.run({"x": OnDevice(x, 2, 0)}, out={"y": OnDevice(y, 2, 0)})  # handed as cuda:0 views, in place
        np.testing.assert_array_equal(y, 2 * x)
        with pytest.raises(jb.InputError, match="input 'x': the buffer is in cuda:1 memory, but this session "
                                                "computes from host memory and cuda:0 memory"):
            s.run({"x": OnDevice(x, 2, 1)}, out={"y": OnDevice(y, 2, 0)})
    with jb.Session("anything", backend="optecho") as s:  # names none: host memory only
        assert s.devices == ["cpu"]
        with pytest.raises(jb.InputError, match="the buffer is in cuda:0 memory"):
            s.run({"x": OnDevice(x, 2, 0)}, out={"y": np.zeros(4, np.float32)})


def test_session_empty_is_the_plugins_own_memory_where_it_hands_some(echo_log):
    caplog = echo_log
    s = jb.Session("anything", backend="optechopin")
    x = s.empty(5)
    assert x.base.device == "cuda_pinned" and x.ctypes.data % 64 == 0  # what the plugin said
    x[:] = np.arange(5)
    y = np.empty(5, np.float32)
    s.run({"x": x}, out={"y": y})
    np.testing.assert_array_equal(y, 2 * np.arange(5))
    s.close()
    x[:] = 1.0  # outlives the session; the plugin releases it when the array goes
    assert not [r for r in caplog.records if "released" in r.getMessage()]
    del x
    gc.collect()
    assert [r.getMessage() for r in caplog.records if "released" in r.getMessage()] == ["released 20 bytes"]
    plain = jb.Session("anything", backend="optecho").empty(5)  # no entry: the core's host memory
    assert plain.base.device == "cpu" and plain.ctypes.data % 64 == 0


def test_a_dlpack_consumer_keeps_the_plugins_memory_until_it_lets_it_go(echo_log):
    torch = pytest.importorskip("torch")
    caplog = echo_log
    s = jb.Session("anything", backend="optechopin")
    x = s.empty(5)
    x[:] = np.arange(5)
    t = torch.from_dlpack(x.base)  # host memory, pinned or not, is exported as kDLCPU
    assert t.data_ptr() == x.ctypes.data
    del x
    s.close()
    gc.collect()
    assert not [r for r in caplog.records if "released" in r.getMessage()]
    assert t.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]  # the export alone holds the plugin's block
    del t
    gc.collect()
    assert [r.getMessage() for r in caplog.records if "released" in r.getMessage()] == ["released 20 bytes"]


def test_a_plugin_allocating_outputs_on_its_gpu_hands_them_back_as_device_memory(echo_log, monkeypatch):
    """optechodev with output_device=cuda allocates y in host memory it labels cuda:0 (cuda:3 with
    colour=astray): the core takes it as GPU memory of a GPU the plugin names, and Python hands it back as
    device memory that is never read on the host. torch and CuPy are hidden, as on a machine with neither:
    the output is then the RuntimeMemory itself."""
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "cupy", None)
    x = OnDevice(np.arange(4, dtype=np.float32), 2, 0)

    def released():
        return [r.getMessage() for r in echo_log.records if "released" in r.getMessage()]

    with jb.Session("anything", backend="optechodev", output_device="cuda") as s:
        assert received(s)["output_device"] == "cuda"
        y = s.run({"x": x})["y"]
        assert isinstance(y, jb.RuntimeMemory)
        assert (y.device, y.shape, y.dtype, y.__dlpack_device__()) == ("cuda:0", (4,), np.float32, (2, 0))
        with pytest.raises(BufferError, match="the memory is on cuda:0, not on cpu:0"):
            y.__dlpack__(dl_device=(1, 0))
        assert released() == []
        del y
        gc.collect()
        assert released() == ["released 16 bytes"]
        z = s.run_async({"x": x}).result(timeout=60)["y"]
        assert isinstance(z, jb.RuntimeMemory) and z.device == "cuda:0"
        del z
    with jb.Session("anything", backend="optechodev", output_device="cuda", config={"colour": "astray"}) as s:
        with pytest.raises(jb.RunError, match="plugin 'optechodev' allocated output 'y' in cuda:3 memory; "
                                              "expected host memory or cuda:0 memory"):
            s.run({"x": x})
        with pytest.raises(jb.RunError, match="allocated output 'y' in cuda:3 memory"):
            s.run_async({"x": x}).result(timeout=60)
    gc.collect()
    assert released() == ["released 16 bytes"] * 4  # the refused ones too: nothing leaks
    with pytest.raises(jb.InvalidArgumentError, match="option 'output_device' cuda: the optecho backend allocates "
                                                      "its outputs in host memory"):
        jb.Session("anything", backend="optecho", output_device="cuda")


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_an_output_torch_cannot_take_comes_back_as_runtime_memory(echo_plugins, monkeypatch):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("torch computes on a GPU here: it would take the labelled host memory as GPU memory")
    monkeypatch.setenv("JUNO_BRIDGE_PLUGIN_PATH", str(echo_plugins))
    monkeypatch.setitem(sys.modules, "cupy", None)
    with jb.Session("anything", backend="optechodev", output_device="cuda") as s:
        y = s.run({"x": OnDevice(np.arange(4, dtype=np.float32), 2, 0)})["y"]
    assert isinstance(y, jb.RuntimeMemory) and y.device == "cuda:0"  # a CPU-only torch refused it
