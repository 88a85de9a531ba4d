"""The source distribution builds: it holds every file its build reads (the C++, CMake's files, the Cython
module and its .pxi parts), and a change to a .pxi part builds the module anew (Cython's output and
setuptools' extension both depend on it). Built from a copy of the repository's tracked files."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# What the build reads: setup.py runs CMake on these, then Cython on bridge/.
BUILD_INPUTS = ("CMakeLists.txt", "setup.py", "pyproject.toml", "cmake/", "cpp/", "third_party/", "bridge/")


def tracked_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [name for name in listed.decode().split("\0") if name and (REPO / name).is_file()]


def copy_of_repository(into: Path) -> Path:
    for name in tracked_files():
        if not name.startswith("tests/"):
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, into / name)
    return into


def python(code: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_sdist_holds_what_its_build_reads_and_a_pxi_change_rebuilds_the_module(tmp_path):
    source = copy_of_repository(tmp_path / "source")
    name = python("from setuptools import build_meta; print(build_meta.build_sdist('dist'))", source).split()[-1]
    with tarfile.open(source / "dist" / name) as archive:
        members = {m.name.split("/", 1)[1] for m in archive.getmembers() if "/" in m.name and m.isfile()}
    needed = [f for f in tracked_files() if f.startswith(BUILD_INPUTS)]
    assert not [f for f in needed if f not in members], "the sdist lacks files its build reads"
    assert not [m for m in members if re.fullmatch(r"bridge/[^/]*\.cpp", m)], "Cython's output is made at build time"

    included = re.findall(r'^include "(\w+\.pxi)"$', (REPO / "bridge" / "_core.pyx").read_text(), re.MULTILINE)
    assert len(included) >= 5 and all(f"bridge/{part}" in members for part in included)
    # setuptools builds the extension anew when one of its `depends` is newer than it.
    show = ("import setuptools\nfrom distutils.core import run_setup\n"
            "dist = run_setup('setup.py', stop_after='init')\n"
            "print(*[d for e in dist.ext_modules if e.name == 'juno_bridge._core' for d in e.depends], sep='\\n')")
    depends = python(show, source).split()
    assert all(f"bridge/{part}" in depends for part in included), depends
    # Cython makes its output anew when a .pxi part is newer than it (setup.py runs cythonize on import).
    generated = source / "bridge" / "_core.cpp"
    before = generated.stat().st_mtime_ns
    part = source / "bridge" / included[-1]
    os.utime(part, ns=(before + 10**9, before + 10**9))
    python(show, source)
    assert generated.stat().st_mtime_ns > before, "a changed .pxi part did not make _core.cpp anew"
