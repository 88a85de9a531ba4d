"""A .pt2 that torch alone made (no juno-bridge signature) is checked against the input checks compiled
into it, read from the package, and never by switching on torch's process-wide AOTI_RUNTIME_CHECK_INPUTS:
the user's own torch keeps behaving as before, and a refused size is our error, named, with no stderr."""
import subprocess
import sys

import numpy as np
import pytest

from helpers import torch_models as tm
from helpers.torch_models import torch

import juno_bridge as jb


@pytest.fixture(scope="module")
def from_torch():
    return jb.Session(tm.tiny_pt2_from_torch())


def test_opening_and_running_it_leaves_the_process_environment_and_users_torch_alone(tmp_path):
    # A fresh process: the environment is the process's, and torch's packages read it once.
    path = str(tm.tiny_pt2_from_torch())
    code = f"""
import ctypes, numpy as np, torch, juno_bridge as jb
s = jb.Session({path!r})
s.run({{"input_0": np.ones((3, 8), np.float32)}})
getenv = ctypes.CDLL(None).getenv
getenv.restype = ctypes.c_char_p
print("env:", getenv(b"AOTI_RUNTIME_CHECK_INPUTS"))
model = torch._inductor.aoti_load_package({path!r})   # the user's own torch, after ours
print("user:", tuple(model(torch.ones(1, 8)).shape))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert "env: None" in out.stdout, out.stdout + out.stderr
    assert "user: (1, 4)" in out.stdout, out.stdout + out.stderr
    assert "input_handles" not in out.stderr


def test_a_package_exported_from_batch_1_accepts_batch_1(from_torch):
    (x,) = from_torch.inputs()
    assert (x.name, x.dtype, x.shape) == ("input_0", np.dtype(np.float32), (-1, 8))
    a = np.random.default_rng(0).standard_normal((1, 8)).astype(np.float32)
    with torch.inference_mode():
        want = tm.TINY(torch.from_numpy(a)).numpy()
    np.testing.assert_allclose(from_torch.run({"input_0": a})["output"], want, rtol=1e-5, atol=1e-6)


def test_sizes_outside_the_compiled_checks_are_our_error_naming_the_bound_and_its_source(from_torch, capfd):
    symbol = from_torch.inputs()[0].dim_names[0]
    with pytest.raises(jb.InputError, match=rf"^input 'input_0': dim 0 \('{symbol}'\) is 101, outside the range "
                                            r"\[1, 100\] that the package's compiled input checks allow "
                                            r"\(read from its wrapper source\)$"):
        from_torch.run({"input_0": np.ones((101, 8), np.float32)})
    with pytest.raises(jb.InputError, match=r"is 0, outside the range \[1, 100\] .*; its lower bound 1 stands for "
                                            r"their 2, torch's tracing floor for a dynamic dim$"):
        from_torch.run({"input_0": np.ones((0, 8), np.float32)})
    with pytest.raises(jb.InputError, match=r"input 'input_0': expected shape \[s\d+, 8\], got \[3, 9\]"):
        from_torch.run({"input_0": np.ones((3, 9), np.float32)})
    assert capfd.readouterr().err == ""


def test_with_its_exported_program_the_exported_ranges_are_used_and_named(capfd):
    s = jb.Session(tm.tiny_pt2_from_torch_with_program())
    a = np.random.default_rng(1).standard_normal((1, 8)).astype(np.float32)
    with torch.inference_mode():
        want = tm.TINY(torch.from_numpy(a)).numpy()
    np.testing.assert_allclose(s.run({"input_0": a})["output"], want, rtol=1e-5, atol=1e-6)
    for rows in (0, 101):
        with pytest.raises(jb.InputError, match=rf"is {rows}, outside the range \[1, 100\] it was exported for "
                                                r"\(the range_constraints of the package's ExportedProgram\)$"):
            s.run({"input_0": np.ones((rows, 8), np.float32)})
    assert capfd.readouterr().err == ""


def test_an_unnamed_dynamic_dim_in_a_signature_is_checked_against_the_compiled_checks(tmp_path):
    def unname(md):
        md[tm.SIGNATURE_KEY] = md[tm.SIGNATURE_KEY].replace("input x float32 batch 8", "input x float32 ? 8")
    s = jb.Session(tm.rewrite_package_metadata(tm.tiny(".pt2"), tmp_path / "unnamed.pt2", unname))
    assert s.inputs()[0].dim_names[0] != "batch"
    with pytest.raises(jb.InputError, match=r"input 'x': dim 0 \('s\d+'\) is 1048577, outside the range "
                                            r"\[0, 1048576\] that the package's compiled input checks allow"):
        s.run({"x": np.zeros((1048577, 8), np.float32)})


def test_a_package_without_signature_or_wrapper_source_is_refused_at_open(tmp_path):
    import zipfile
    path = tmp_path / "no_source.pt2"
    with zipfile.ZipFile(tm.tiny_pt2_from_torch()) as zin, zipfile.ZipFile(path, "w") as zout:
        for item in zin.infolist():
            if not item.filename.endswith(".cpp"):
                zout.writestr(item, zin.read(item.filename))
    with pytest.raises(jb.ModelLoadError, match="no juno_bridge signature and keeps no wrapper source .* cannot be "
                                                "checked .*export_torch"):
        jb.Session(path)
