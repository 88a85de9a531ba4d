"""Options and the backend registry through the C ABI (juno_bridge.h), from a C program built against
the installed package: a misspelt option refused by name, config.<key> for ONNX Runtime, every backend."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import juno_bridge as jb

SOURCES = Path(__file__).resolve().parent / "cpp"
PKG = Path(jb.__file__).resolve().parent
CC = os.environ.get("CC", "gcc")


@pytest.mark.skipif(shutil.which(CC) is None, reason="no C compiler")
def test_options_and_backend_registry_through_the_c_abi(tmp_path, add_f32):
    exe = tmp_path / "options_c_abi"
    subprocess.run([CC, "-std=c11", "-O1", "-Wall", "-Werror", str(SOURCES / "options_c_abi.c"), "-o", str(exe),
                    f"-I{PKG / 'include'}", f"-L{PKG / 'lib'}", "-ljuno_bridge", f"-Wl,-rpath,{PKG / 'lib'}"],
                   check=True)
    done = subprocess.run([str(exe), str(add_f32)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.rstrip().endswith("OK")
    lines = {line.split(" | ")[0].split()[1]: line for line in done.stdout.splitlines() if line.startswith("backend ")}
    assert list(lines)[:1] == ["onnxruntime"]
    names = {b.name for b in jb.backends()}
    assert set(lines) == names
    assert "prefixes python:" in lines["python"] and "marker saved_model.pb" in lines["tf"]
    assert f"path {PKG / 'lib' / 'libjuno_bridge_torch.so'}" in lines["torch"]
