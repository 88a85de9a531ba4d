"""Every library juno-bridge installs exports only its own API: the core jb_* and jb:: (with their classes'
type information), a plugin its jb_* entry points, a Python extension module its PyInit_. Never a symbol of
libstdc++ or libgcc: our libraries are loaded into processes that carry other copies of them (numpy,
torch, TensorFlow; a HEP release built with its own GCC), and a toolchain that links libstdc++ statically
(-static-libstdc++) would otherwise export thousands of std:: symbols that bind to the process's own copy
(the first Session(path) then crashed in the locale facets of one libstdc++ meeting the other's).

The dynamic symbol table is read with the tools a user has (nm -D, demangled by nm -C)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

import juno_bridge as jb

PACKAGE = Path(jb.__file__).parent
# Demangled names of a C++ runtime: libstdc++'s templates and helpers, the C++ ABI, the unwinder.
FOREIGN = re.compile(r"^(std::|__gnu_cxx::|__cxxabiv1::|__cxa_|__gxx_|_Unwind_|__gcc_|operator new|operator delete|"
                     r"(typeinfo|typeinfo name|vtable|VTT) for (std|__gnu_cxx|__cxxabiv1)::)")
# What each kind of library may export (demangled). The core: the C ABI and the jb:: namespace.
OURS = {
    "core": re.compile(r"^(jb_\w+|(void )?jb::.*|(typeinfo|typeinfo name|vtable|VTT|guard variable) for jb::.*)$"),
    "plugin": re.compile(r"^jb_\w+$"),
    "sniper": re.compile(r"^((typeinfo|typeinfo name|vtable|VTT|guard variable) for )?jb::sniper::.*$"),
    "extension": re.compile(r"^PyInit_\w+$"),
}


def installed_libraries() -> list[tuple[Path, str]]:
    libraries = [(PACKAGE / "lib" / "libjuno_bridge.so", "core")]
    libraries += [(p, "plugin") for p in sorted((PACKAGE / "lib").glob("libjuno_bridge_*.so"))]
    libraries += [(p, "extension") for p in sorted(PACKAGE.glob("_*.so"))]  # _sniper too, where built
    libraries += [(p, "sniper") for p in sorted((PACKAGE / "lib").glob("libJunoBridgeSniper.so"))]
    return libraries


def exported(library: Path) -> list[str]:
    """The demangled names of the symbols the library defines in its dynamic symbol table."""
    result = subprocess.run(["nm", "-D", "-C", "--defined-only", str(library)], capture_output=True, text=True,
                            check=True)
    # "<address> <type> <name>": the name may hold spaces (argument lists).
    return [line.split(" ", 2)[2] for line in result.stdout.splitlines() if line.count(" ") >= 2]


@pytest.fixture(scope="module", autouse=True)
def _nm():
    from helpers.optional import require_tool
    require_tool("nm")


def test_the_package_has_the_core_its_plugins_and_extension_modules():
    kinds = [kind for _, kind in installed_libraries()]
    assert (PACKAGE / "lib" / "libjuno_bridge.so").is_file()
    assert kinds.count("plugin") >= 1 and kinds.count("extension") >= 2, installed_libraries()


@pytest.mark.parametrize("library,kind", installed_libraries(), ids=lambda v: v.name if isinstance(v, Path) else v)
def test_no_runtime_symbol_is_exported(library, kind):
    foreign = [name for name in exported(library) if FOREIGN.match(name)]
    assert not foreign, f"{library.name} exports {len(foreign)} symbols of the C++ runtime, e.g. {foreign[:5]}"


@pytest.mark.parametrize("library,kind", installed_libraries(), ids=lambda v: v.name if isinstance(v, Path) else v)
def test_only_our_api_is_exported(library, kind):
    names = exported(library)
    others = [name for name in names if not OURS[kind].match(name)]
    assert names and not others, f"{library.name} ({kind}) exports what is not its API: {others[:10]}"


def test_the_public_cpp_api_is_exported():
    """What a C++ program links against (tests/native/cpp/run_model.cpp and the README's example)."""
    names = set(exported(PACKAGE / "lib" / "libjuno_bridge.so"))
    for wanted in ("jb::Session::Session(", "jb::Session::run(", "jb::Session::close()", "jb::SessionOptions::set(",
                   "typeinfo for jb::Error", "jb::BatchAssembler::", "jb::onnxruntime_info(", "jb_session_open",
                   # a template's instantiations demangle with their return type first (SNiPER's HitsReaderAlg)
                   "void jb::scatter_hits<int>(", "void jb::scatter_hits<long>("):
        assert any(name.startswith(wanted) for name in names), f"{wanted} is not exported"


def test_a_plugin_exports_its_entry_point():
    from juno_bridge import backends
    for backend in backends():
        if backend.plugin and backend.available:
            names = exported(Path(backend.plugin_path))
            assert "jb_plugin_init" in names, (backend.name, names)
