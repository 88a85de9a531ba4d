"""Bad input to a torch model is a clear error naming what was expected and what came, never a read
past a buffer or a crash: wrong shapes and dtypes, no signature, corrupt files, foreign CPUs."""
import numpy as np
import pytest

from helpers import torch_models as tm
from helpers.jb_c import run_with_stale_output_views

import juno_bridge as jb


def test_wrong_shape_for_fixed_shape_pt2_is_an_error_not_a_read_past_the_buffer():
    s = jb.Session(tm.tiny(".pt2", dynamic_batch=False))  # compiled for [4, 8]
    with pytest.raises(jb.InputError, match=r"input 'x': expected shape \[4, 8\], got \[2, 8\]"):
        s.run({"x": np.ones((2, 8), np.float32)})


def test_wrong_shape_for_fixed_pt2_without_signature_is_caught_from_its_compiled_checks():
    s = jb.Session(tm.tiny_pt2_unsigned(fixed=True))
    with pytest.raises(jb.InputError, match=r"input 'input_0': expected shape \[4, 8\], got \[2, 8\]"):
        s.run({"input_0": np.ones((2, 8), np.float32)})


@pytest.mark.parametrize("suffix", [".pt2", ".pt"])
def test_wrong_feature_dim_names_input_and_dims(suffix):
    s = jb.Session(tm.tiny(suffix))
    with pytest.raises(jb.InputError, match=r"input 'x': expected shape \[batch, 8\], got \[3, 9\]"):
        s.run({"x": np.ones((3, 9), np.float32)})


@pytest.mark.parametrize("suffix", [".pt2", ".pt"])
def test_wrong_dtype_names_expected_and_given(suffix):
    s = jb.Session(tm.tiny(suffix))
    with pytest.raises(jb.InputTypeError, match="input 'x': expected dtype float32, got float64"):
        s.run({"x": np.ones((3, 8), np.float64)})


@pytest.mark.parametrize("suffix", [".pt2", ".pt"])
def test_batch_outside_exported_range_and_inconsistent_output(suffix):
    s = jb.Session(tm.tiny(suffix))
    with pytest.raises(jb.InputError, match=r"dim 0 \('batch'\) is 0, outside the range \[1, 1048576\]"):
        s.run({"x": np.ones((0, 8), np.float32)})
    with pytest.raises(jb.InputError, match=r"output 'y': dim 0 \('batch'\) must be 3 as in input 'x'"):
        s.run({"x": np.ones((3, 8), np.float32)}, out={"y": np.empty((5, 4), np.float32)})


def test_pt_without_signature_opens_and_states_what_is_unknown():
    s = jb.Session(tm.tiny_pt_unsigned())
    (x,), (y,) = s.inputs(), s.outputs()
    assert (x.dtype, x.shape, x.type_name) == (None, None, "unknown")
    assert (y.name, y.dtype, y.shape) == ("output", None, None)
    assert s.metadata()["custom"]["signature"].startswith("none: input and output dtypes and shapes are unknown")
    a = np.ones((3, 8), np.float32)
    np.testing.assert_allclose(s.run({x.name: a})["output"], jb.Session(tm.tiny(".pt")).run({"x": a})["y"])
    with pytest.raises(jb.RunError, match="shapes cannot be multiplied"):
        s.run({x.name: np.ones((3, 7), np.float32)})
    with pytest.raises(jb.InputError, match=r"output 'output': expected shape \[3, 4\], got \[3, 5\]"):
        s.run({x.name: a}, out={"output": np.empty((3, 5), np.float32)})


def test_pt2_without_signature_runs_checked_against_its_compiled_checks():
    s = jb.Session(tm.tiny_pt2_unsigned(fixed=False))
    (x,), (y,) = s.inputs(), s.outputs()
    assert (x.name, x.dtype, x.shape, x.type_name) == ("input_0", np.dtype(np.float32), (-1, 8), "tensor(float)")
    assert (y.name, y.dtype, y.type_name) == ("output", None, "unknown")
    assert s.metadata()["custom"]["signature"].startswith("none: input dtypes and shapes are read from the package's "
                                                          "compiled input checks")
    a = np.ones((2, 8), np.float32)
    np.testing.assert_allclose(s.run({"input_0": a})["output"], jb.Session(tm.tiny(".pt2")).run({"x": a})["y"])
    with pytest.raises(jb.InputTypeError, match="input 'input_0': expected dtype float32, got float64"):
        s.run({"input_0": np.ones((2, 8), np.float64)})


@pytest.mark.parametrize("suffix", [".pt2", ".pt"])
@pytest.mark.parametrize("content", [b"", b"not a zip archive" * 50, "truncated"])
def test_corrupt_file_is_a_model_load_error(tmp_path, suffix, content):
    path = tmp_path / f"corrupt{suffix}"
    path.write_bytes(tm.tiny(suffix).read_bytes()[:4000] if content == "truncated" else content)
    with pytest.raises(jb.ModelLoadError, match="corrupt" + suffix):
        jb.Session(path)


def test_missing_file_is_a_model_load_error(tmp_path):
    with pytest.raises(jb.ModelLoadError, match="no such file"):
        jb.Session(tmp_path / "absent.pt2")


def _missing_isa():
    flags = open("/proc/cpuinfo").read().split()
    if "avx512f" not in flags:
        return "AVX512"
    if "amx_tile" not in flags:
        return "AVX512 AVX512_VNNI AMX_TILE"
    return None


def test_package_compiled_for_another_cpu_is_refused_not_run(tmp_path):
    isa = _missing_isa()
    if isa is None:
        pytest.skip("this CPU has every ISA extension AOTInductor targets")
    path = tm.rewrite_package_metadata(tm.tiny(".pt2"), tmp_path / "other_cpu.pt2",
                                       lambda md: md.update(AOTI_CPU_ISA=isa))
    with pytest.raises(jb.ModelLoadError, match="was compiled for CPUs with .*; this CPU lacks"):
        jb.Session(path)


def test_package_compiled_for_another_machine_is_refused(tmp_path):
    path = tm.rewrite_package_metadata(tm.tiny(".pt2"), tmp_path / "arm.pt2",
                                       lambda md: md.update(AOTI_MACHINE="aarch64"))
    with pytest.raises(jb.ModelLoadError, match="was compiled for aarch64 machines"):
        jb.Session(path)


def _cuda_available() -> bool:
    import torch
    return torch.cuda.is_available()


@pytest.mark.skipif(_cuda_available(), reason="CUDA is available here: a CUDA package runs (tests/torch/test_cuda.py)")
def test_package_compiled_for_cuda_without_a_gpu_is_unavailable_naming_the_device(tmp_path):
    """A CUDA .pt2 (its metadata says so; writing a real one needs CUDA) on a libtorch without a GPU: a clear
    refusal at open, before the loader reaches for CUDA (which crashed the process)."""
    path = tm.rewrite_package_metadata(tm.tiny(".pt2"), tmp_path / "cuda.pt2",
                                       lambda md: md.update(AOTI_DEVICE_KEY="cuda", AOTI_COMPUTE_CAPABILITY="90"))
    with pytest.raises(jb.BackendUnavailableError,
                       match=r"(?s)cuda\.pt2' was compiled for CUDA \(AOTInductor device 'cuda'\).*no CUDA device.*"
                             r"CPU-only build.*export_torch"):
        jb.Session(path)


def test_package_compiled_for_another_device_is_unavailable(tmp_path):
    path = tm.rewrite_package_metadata(tm.tiny(".pt2"), tmp_path / "xpu.pt2",
                                       lambda md: md.update(AOTI_DEVICE_KEY="xpu"))
    with pytest.raises(jb.BackendUnavailableError,
                       match="compiled for xpu .*runs .pt2 packages compiled for the CPU or CUDA"):
        jb.Session(path)


def test_a_cpu_package_says_where_it_runs():
    with jb.Session(tm.tiny(".pt2")) as s:
        assert s.metadata()["custom"]["device"] == "cpu"
        assert s.metadata()["custom"]["AOTI_DEVICE_KEY"] == "cpu"


def test_option_device_moves_a_module_where_asked_and_says_why_it_cannot():
    x = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    with jb.Session(tm.tiny(".pt")) as plain, jb.Session(tm.tiny(".pt"), config={"device": "cpu"}) as s:
        assert s.metadata()["custom"]["device"] == "cpu" and s.devices == ["cpu"]
        np.testing.assert_array_equal(s.run({"x": x})["y"], plain.run({"x": x})["y"])
    if not tm.torch.cuda.is_available():
        with pytest.raises(jb.BackendUnavailableError, match="option device='cuda:0': no CUDA device is available"):
            jb.Session(tm.tiny(".pt"), config={"device": "cuda"})
    for bad in ("gpu", "cuda:", "cuda:x", "cuda0", "CPU"):
        with pytest.raises(jb.InvalidArgumentError, match=f"option 'device' must be cpu, cuda or cuda:N, got '{bad}'"):
            jb.Session(tm.tiny(".pt"), config={"device": bad})
    with pytest.raises(jb.InvalidArgumentError, match="option device='cuda:1': .* was compiled for cpu, and a "
                                                      "compiled package runs only there"):
        jb.Session(tm.tiny(".pt2"), config={"device": "cuda:1"})


@pytest.mark.parametrize("suffix", [".pt2", ".pt"])
def test_output_device_cuda_for_a_model_on_the_cpu_is_refused_never_given_host_memory(suffix):
    with pytest.raises(jb.InvalidArgumentError, match=r"option output_device=cuda: .* runs on the CPU, so its "
                                                      r"outputs lie in host memory \(a .pt: option device='cuda'; "
                                                      r"a .pt2: export it for CUDA\)"):
        jb.Session(tm.tiny(suffix), output_device="cuda")
    x = np.ones((2, 8), np.float32)
    with jb.Session(tm.tiny(suffix), output_device="cpu") as s:  # the default, said out loud
        assert isinstance(s.run({"x": x})["y"], np.ndarray)


@pytest.mark.parametrize("suffix", [".pt2", ".pt"])
def test_staging_for_a_model_on_the_cpu_is_refused_since_nothing_is_copied_to_a_gpu(suffix):
    with pytest.raises(jb.InvalidArgumentError, match=r"option staging=pinned .* \(backend torch\) computes from "
                                                      r"host memory, which it reads in place"):
        jb.Session(tm.tiny(suffix), staging="pinned")


def test_malformed_signature_is_a_model_load_error(tmp_path):
    bad = {tm.SIGNATURE_KEY: "juno_bridge.signature 1\ninput x f33 4"}
    path = tm.rewrite_package_metadata(tm.tiny(".pt2"), tmp_path / "bad_sig.pt2", lambda md: md.update(bad))
    with pytest.raises(jb.ModelLoadError, match="signature is malformed: line 2: unknown dtype 'f33'"):
        jb.Session(path)


def test_unknown_option_is_refused():
    with pytest.raises(jb.InvalidArgumentError, match="unknown option 'bogus'"):
        jb.Session(tm.tiny(".pt"), config={"bogus": "1"})


def test_export_refuses_a_batch_it_cannot_generalize_from(tmp_path):
    with pytest.raises(ValueError, match="batch dim of at least 2"):
        tm.export_torch(tm.TINY, tm.torch.ones(1, 8), tmp_path / "one.pt2")


def test_without_the_plugin_a_torch_model_is_backend_unavailable(tmp_path):
    # A copy of the installed package without libjuno_bridge_torch.so, used by a fresh interpreter.
    import shutil
    import subprocess
    import sys
    from pathlib import Path
    pkg = Path(jb.__file__).parent
    shutil.copytree(pkg, tmp_path / "juno_bridge", ignore=shutil.ignore_patterns("libjuno_bridge_torch.so"))
    code = (f"import juno_bridge as jb\ntry:\n    jb.Session({str(tm.tiny('.pt'))!r})\n"
            "except jb.BackendUnavailableError as e:\n    print(e)\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert "backend unavailable: 'torch'" in out.stdout, out.stderr
    assert "install with the torch extra and rebuild" in out.stdout


def test_pt2_from_bytes_says_to_open_it_from_a_path():
    with pytest.raises(jb.ModelLoadError, match=r"\.pt2 packages must be opened from a path"):
        jb.Session(tm.tiny(".pt2").read_bytes(), backend="torch")


@pytest.mark.parametrize("suffix", [".pt2", ".pt"])
def test_an_output_the_plugin_allocates_is_host_memory_whatever_its_view_held(suffix):
    # A stale CUDA device beside NULL data once made the plugin synchronise a GPU: "No CUDA GPUs are available".
    result = run_with_stale_output_views(tm.tiny(suffix), batch=2, features=8)
    assert result == {"status": 0, "error": [0, ""], "device": 0, "device_id": 0, "rank": 2}, result
