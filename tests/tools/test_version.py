"""The version is written once, in juno_bridge/VERSION: CMake generates juno_bridge/version.h from it
(cpp/include/juno_bridge/version.h.in), setuptools reads it for the package, and every place that
tells the version says that one."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from helpers.native_build import REPO, build, require_tool, run_program

import juno_bridge as jb
from juno_bridge import _core, paths

VERSION = (REPO / "juno_bridge" / "VERSION").read_text().strip()

# Prints what the headers say and what the library it runs against says.
PRINT_VERSIONS = r"""
#include <stdio.h>
#include "juno_bridge/juno_bridge.h"
int main(void) {
  printf("%s %d.%d.%d %s\n", JB_VERSION_STRING, JB_VERSION_MAJOR, JB_VERSION_MINOR, JB_VERSION_PATCH, jb_version());
  return 0;
}
"""


def test_the_version_file_holds_a_release_number():
    assert re.fullmatch(r"\d+\.\d+\.\d+", VERSION), VERSION


def test_python_the_core_and_the_command_say_the_version_file():
    assert jb.__version__ == VERSION
    assert _core.version() == VERSION  # jb_version() of the core the Cython module links
    command = Path(sys.executable).with_name("juno-bridge")
    done = subprocess.run([str(command), "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == f"juno-bridge {VERSION}"


def test_the_installed_header_and_library_say_the_version_file(tmp_path):
    """A C program built against the installed package, as `juno-bridge config` says: the macros of the
    generated juno_bridge/version.h (through juno_bridge.h) and jb_version() of the library."""
    require_tool("gcc")
    source = tmp_path / "print_versions.c"
    source.write_text(PRINT_VERSIONS)
    exe = tmp_path / "print_versions"
    build(["gcc", "-std=c11", "-g0", "-Wall", "-Wextra", *paths.cflags("c"), source, "-o", exe, *paths.libs()])
    done = run_program([exe])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [VERSION, VERSION, VERSION]
    assert (paths.include_dir() / "juno_bridge" / "version.h").is_file()
    assert not list(paths.include_dir().rglob("*.in"))  # the template stays in the source tree


# What code and build files are written in (the models and data beside them are not).
SOURCES = {".py", ".pyx", ".pxd", ".h", ".hpp", ".c", ".cpp", ".in", ".cmake", ".txt", ".toml", ".map"}


def test_the_version_is_written_nowhere_else():
    """No source, build file or header spells the version (or defines the version macros) by hand."""
    written = re.compile(rf"(?<![\d.]){re.escape(VERSION)}(?!\d)|#\s*define\s+JB_VERSION_(MAJOR|MINOR|PATCH|STRING)\b")
    listed = subprocess.run(["git", "ls-files", "-z", "cpp", "cmake", "bridge", "juno_bridge", "CMakeLists.txt",
                             "setup.py", "pyproject.toml"], cwd=REPO, capture_output=True, check=True).stdout
    offenders = []
    for name in filter(None, listed.decode().split("\0")):
        path = REPO / name
        if name == "cpp/include/juno_bridge/version.h.in" or not path.is_file() or path.suffix not in SOURCES:
            continue
        text = path.read_text(errors="replace")
        offenders += [f"{name}: {m.group(0)}" for m in written.finditer(text)]
    assert not offenders, offenders


def test_the_cmake_package_has_the_version(tmp_path):
    """find_package(juno_bridge <version> CONFIG) against the installed package: its version file answers."""
    require_tool("cmake")
    major = VERSION.split(".")[0]
    (tmp_path / "CMakeLists.txt").write_text(textwrap.dedent(f"""\
        cmake_minimum_required(VERSION 3.18)
        project(probe LANGUAGES NONE)
        find_package(juno_bridge {major} CONFIG REQUIRED)
        message(STATUS "juno_bridge_VERSION=${{juno_bridge_VERSION}}")
    """))
    done = subprocess.run(["cmake", "-S", str(tmp_path), "-B", str(tmp_path / "build"),
                           f"-Djuno_bridge_DIR={paths.cmake_dir()}"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"juno_bridge_VERSION={VERSION}\n" in done.stdout


def soname(library: Path) -> str:
    dynamic = subprocess.run(["readelf", "-d", str(library)], capture_output=True, text=True, check=True).stdout
    found = re.search(r"\(SONAME\)\s+Library soname: \[(.+?)\]", dynamic)
    return found.group(1) if found else ""


def test_the_package_holds_one_unversioned_core_library():
    """A wheel cannot hold symbolic links: a versioned SONAME would put libjuno_bridge.so.0 and .so.0.1.0
    beside libjuno_bridge.so as copies, and a process could load two cores. The package has one file."""
    require_tool("readelf")
    core = [p.name for p in paths.lib_dir().iterdir() if p.name.startswith("libjuno_bridge.so")]
    assert core == ["libjuno_bridge.so"]
    library = paths.lib_dir() / "libjuno_bridge.so"
    assert not library.is_symlink() and soname(library) == "libjuno_bridge.so"
    needed = subprocess.run(["readelf", "-d", _core.__file__], capture_output=True, text=True, check=True).stdout
    assert "Shared library: [libjuno_bridge.so]" in needed


def test_a_cmake_install_carries_the_version(tmp_path):
    """The C++ built alone (as a JUNO release does: the core only here) and installed: libjuno_bridge.so ->
    .so.<major> (its SONAME, what programs record) -> .so.<version>, the generated version.h installed, and a
    find_package consumer that asks for the major version builds, records the SONAME and runs."""
    require_tool("cmake")
    require_tool("gcc")
    require_tool("readelf")
    major = VERSION.split(".")[0]
    build_dir, prefix = tmp_path / "build", tmp_path / "prefix"
    tools = Path(sys.executable).parent  # the cmake and ninja the Makefile installs
    generator = ["-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={tools / 'ninja'}"] if (tools / "ninja").exists() else []
    build(["cmake", "-S", REPO, "-B", build_dir, *generator, f"-DCMAKE_INSTALL_PREFIX={prefix}",
           "-DCMAKE_INSTALL_LIBDIR=lib", "-DJB_WITH_PYTHON=OFF", "-DJB_WITH_TORCH=OFF", "-DJB_WITH_TF=OFF",
           "-DJB_BUILD_TOOLS=OFF", "-DJB_PYTHON_EXECUTABLE="])
    build(["cmake", "--build", build_dir, "--parallel", str(os.cpu_count() or 2)])
    build(["cmake", "--install", build_dir])

    lib = prefix / "lib"
    assert os.readlink(lib / "libjuno_bridge.so") == f"libjuno_bridge.so.{major}"
    assert os.readlink(lib / f"libjuno_bridge.so.{major}") == f"libjuno_bridge.so.{VERSION}"
    real = lib / f"libjuno_bridge.so.{VERSION}"
    assert real.is_file() and not real.is_symlink() and soname(real) == f"libjuno_bridge.so.{major}"
    header = (prefix / "include" / "juno_bridge" / "version.h").read_text()
    assert f'#define JB_VERSION_STRING "{VERSION}"' in header

    consumer = tmp_path / "consumer"
    consumer.mkdir()
    (consumer / "print_versions.c").write_text(PRINT_VERSIONS)
    (consumer / "CMakeLists.txt").write_text(textwrap.dedent(f"""\
        cmake_minimum_required(VERSION 3.18)
        project(consumer LANGUAGES C CXX)
        find_package(juno_bridge {major} CONFIG REQUIRED)
        add_executable(print_versions print_versions.c)
        target_link_libraries(print_versions PRIVATE juno_bridge::juno_bridge)
    """))
    build(["cmake", "-S", consumer, "-B", consumer / "build", *generator, f"-DCMAKE_PREFIX_PATH={prefix}"])
    build(["cmake", "--build", consumer / "build"])
    exe = consumer / "build" / "print_versions"
    needed = subprocess.run(["readelf", "-d", str(exe)], capture_output=True, text=True, check=True).stdout
    assert f"Shared library: [libjuno_bridge.so.{major}]" in needed
    done = run_program([exe])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [VERSION, VERSION, VERSION]
