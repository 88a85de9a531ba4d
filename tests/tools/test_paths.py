"""juno_bridge.paths: what `juno-bridge config` prints points at files the build really installed."""
from __future__ import annotations

import shlex
from pathlib import Path

import pytest

import juno_bridge
from juno_bridge import paths


def test_every_directory_holds_what_a_cpp_build_needs():
    assert (paths.include_dir() / "juno_bridge" / "juno_bridge.h").is_file()
    assert (paths.include_dir() / "juno_bridge" / "session.hpp").is_file()
    assert (paths.lib_dir() / "libjuno_bridge.so").is_file()
    assert (paths.cmake_dir() / "juno_bridgeConfig.cmake").is_file()
    assert (paths.cmake_dir() / "juno_bridgeConfigVersion.cmake").is_file()
    for name in ("jb-bench-loop", "jb-ort-raw-loop"):
        assert paths.program(name) == paths.bin_dir() / name


def test_paths_belong_to_the_imported_package():
    package = paths.PACKAGE_DIR
    assert package == Path(juno_bridge.__file__).resolve().parent
    for directory in (paths.include_dir(), paths.lib_dir(), paths.cmake_dir(), paths.bin_dir()):
        assert directory.is_absolute() and directory.parent == package


def test_flags_name_the_include_dir_the_library_and_its_rpath():
    assert paths.cflags() == [f"-I{paths.include_dir()}", "-std=c++17"]
    assert paths.cflags("c") == [f"-I{paths.include_dir()}"]
    assert paths.libs() == [f"-L{paths.lib_dir()}", "-ljuno_bridge", f"-Wl,-rpath,{paths.lib_dir()}"]
    assert shlex.split(paths.as_command_line(paths.libs())) == paths.libs()


def test_misuse_is_a_clear_error():
    with pytest.raises(ValueError, match="language"):
        paths.cflags("fortran")
    with pytest.raises(FileNotFoundError, match="no-such-program"):
        paths.program("no-such-program")
