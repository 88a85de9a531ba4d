"""Where the package keeps what a C or C++ build needs (headers, libjuno_bridge.so, the CMake config,
the compiled benchmark loops), and where it caches what it generates (models, the Triton server).

Everything is derived from this file's location, so the answers are right both for an installed
package (site-packages/juno_bridge/...) and for an in-place build (the source tree's juno_bridge/).
`juno-bridge config --cflags --libs --cmake-dir` prints these.
"""
from __future__ import annotations

import os
import shlex
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def include_dir() -> Path:
    """The directory to put on the include path: `#include "juno_bridge/session.hpp"` resolves in it."""
    return PACKAGE_DIR / "include"


def lib_dir() -> Path:
    """The directory holding libjuno_bridge.so (and the backend plugins)."""
    return PACKAGE_DIR / "lib"


def cmake_dir() -> Path:
    """The directory holding juno_bridgeConfig.cmake: pass it as -Djuno_bridge_DIR=..."""
    return PACKAGE_DIR / "cmake"


def examples_dir() -> Path:
    """The directory holding the installed examples (sniper/: a SNiPER package on ModelAlg, its jobs)."""
    return PACKAGE_DIR / "examples"


def components() -> dict[str, str]:
    """The CMake package's components (find_package(juno_bridge CONFIG COMPONENTS ...)): name -> state."""
    sniper = lib_dir() / "libJunoBridgeSniper.so"
    return {"sniper": f"built ({sniper}; example: {examples_dir() / 'sniper'})" if sniper.is_file() else
            "not built (make sniper SNIPER_PREFIX=<SNiPER's install prefix>)"}


def bin_dir() -> Path:
    """The directory holding the compiled benchmark loops (jb-bench-loop, jb-ort-raw-loop)."""
    return PACKAGE_DIR / "bin"


def program(name: str) -> Path:
    """The path of a compiled program in bin_dir(); a clear error when the build did not make it."""
    path = bin_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: the juno-bridge build did not produce '{name}' "
                                "(reinstall: pip install --no-build-isolation .)")
    return path


def cflags(language: str = "c++") -> list[str]:
    """Compiler flags for code that includes juno-bridge headers; language "c" omits the C++ standard."""
    if language not in ("c", "c++"):
        raise ValueError(f"language must be 'c' or 'c++'; got {language!r}")
    flags = [f"-I{include_dir()}"]
    return flags + ["-std=c++17"] if language == "c++" else flags


def libs() -> list[str]:
    """Linker flags: the core library, with an rpath so the program finds it with no LD_LIBRARY_PATH."""
    return [f"-L{lib_dir()}", "-ljuno_bridge", f"-Wl,-rpath,{lib_dir()}"]


def as_command_line(flags: list[str]) -> str:
    """Flags joined for a shell (quoted where a path needs it), the way `juno-bridge config` prints them."""
    return " ".join(shlex.quote(f) for f in flags)


def plugins() -> dict[str, Path]:
    """The backend plugins this build made: name -> libjuno_bridge_<name>.so."""
    prefix = "libjuno_bridge_"
    return {p.name[len(prefix):-3]: p for p in sorted(lib_dir().glob(f"{prefix}*.so"))}


def cache_dir() -> Path:
    """$JUNO_BRIDGE_CACHE, else $XDG_CACHE_HOME/juno-bridge, else ~/.cache/juno-bridge (made on first use)."""
    root = os.environ.get("JUNO_BRIDGE_CACHE")
    if root:
        path = Path(root)
    else:
        path = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "juno-bridge"
    path.mkdir(parents=True, exist_ok=True)
    return path
