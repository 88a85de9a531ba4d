"""The Python build entry: CMake builds the C++ (core, plugins, tools; see CMakeLists.txt) and installs it
into the package, then setuptools builds the Cython modules that link the core.

Layout inside the installed package, which C++ builds use through `juno-bridge config`:
    juno_bridge/lib/libjuno_bridge.so (+ plugins)   juno_bridge/include/juno_bridge/*.h*
    juno_bridge/cmake/juno_bridgeConfig.cmake       juno_bridge/bin/ (tools)   juno_bridge/examples/
    juno_bridge/_core.*.so (rpath $ORIGIN/lib)

CMake configures into build/cmake-<python>[-<flags>]/ with this Python (JB_PYTHON_EXECUTABLE), so the plugins
follow what it has installed: the torch plugin when torch is there (JUNO_BRIDGE_REQUIRE_TORCH=1: it must
be, JB_WITH_TORCH=ON). The TensorFlow plugin is always built: it binds TensorFlow's C API at run time.
CMake's own dependency tracking makes rebuilds incremental. CMake reads CFLAGS, CXXFLAGS and LDFLAGS only
when it first configures a folder, so each set of them (and of $JUNO_BRIDGE_CMAKE_ARGS, extra configure
arguments) has a build folder of its own: `LDFLAGS="-static-libstdc++ -static-libgcc" pip install .`
builds what it says, and the default build stays cached beside it. $JUNO_BRIDGE_BUILD_DIR names the folder.
"""
from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
INCLUDE = [str(ROOT / "cpp" / "include"), str(ROOT / "third_party" / "onnxruntime")]
# What CMake installs into the package (relative to juno_bridge/); removed first, so that no plugin of
# an earlier build outlives its dependency.
INSTALL_DIRS = {"LIBDIR": "lib", "INCLUDEDIR": "include", "BINDIR": "bin", "CMAKEDIR": "cmake",
                "EXAMPLESDIR": "examples"}


def run(cmd: list) -> None:
    print(" ".join(shlex.quote(str(c)) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True)


def tool(name: str) -> str | None:
    """cmake or ninja: this Python's own (pip install cmake ninja, as the Makefile does), else PATH's."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


# What changes the compiled code besides the sources: a build folder and an extension build per value.
FLAG_VARIABLES = ("CFLAGS", "CXXFLAGS", "LDFLAGS", "JUNO_BRIDGE_CMAKE_ARGS")


def build_flavour() -> str:
    """'' for the default build, else a short tag of the flags in the environment."""
    flags = "\n".join(f"{name}={os.environ[name]}" for name in FLAG_VARIABLES if os.environ.get(name))
    return hashlib.sha256(flags.encode()).hexdigest()[:10] if flags else ""


def plugin_mode(variable: str) -> str:
    return "ON" if os.environ.get(variable) == "1" else "AUTO"


def build_cpp(package_dir: Path) -> None:
    """Configures (every time: a new torch is a new configure input), builds and installs
    the C++ into package_dir."""
    cmake = tool("cmake")
    if cmake is None:
        raise SystemExit("juno-bridge's C++ is built with CMake >= 3.18: pip install cmake ninja (or install them)")
    flavour = build_flavour()
    build_dir = Path(os.environ.get("JUNO_BRIDGE_BUILD_DIR") or
                     ROOT / "build" / f"cmake-{sys.implementation.cache_tag}{'-' + flavour if flavour else ''}")
    configure = [cmake, "-S", ROOT, "-B", build_dir, f"-DJB_PYTHON_EXECUTABLE={sys.executable}",
                 "-UJB_ONNXRUNTIME_LIBRARY",  # re-read from this Python's onnxruntime wheel
                 f"-DJB_WITH_TORCH={plugin_mode('JUNO_BRIDGE_REQUIRE_TORCH')}",
                 "-DJB_VERSIONED_SONAME=OFF",  # a wheel holds no links: libjuno_bridge.so.0 would be a second copy
                 *[f"-DJB_INSTALL_{key}={value}" for key, value in INSTALL_DIRS.items()],
                 *shlex.split(os.environ.get("JUNO_BRIDGE_CMAKE_ARGS", ""))]
    ninja = tool("ninja")
    if ninja and not (build_dir / "CMakeCache.txt").exists():
        configure += ["-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}"]
    run(configure)
    run([cmake, "--build", build_dir, "--parallel", str(os.cpu_count() or 2)])
    for sub in INSTALL_DIRS.values():
        shutil.rmtree(package_dir / sub, ignore_errors=True)
    run([cmake, "--install", build_dir, "--prefix", package_dir])


class BuildWithCore(build_ext):
    """Builds and installs the C++ into the package before the extensions that link to it."""

    def run(self):
        # setuptools clears `inplace` while it builds and copies only the extension afterwards.
        self._into_source = bool(self.inplace or getattr(self, "editable_mode", False))
        super().run()

    def build_extensions(self):
        # setuptools skips an extension whose sources are older than the built module, whatever flags
        # built it: a change of flavour (a static-libstdc++ build after the default one) builds them anew.
        # (This file is part of the stamp: it says how they are compiled and linked.)
        stamp = Path(self.build_temp) / "juno-bridge-flavour"
        recipe = build_flavour() + ":" + hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:10]
        if not stamp.is_file() or stamp.read_text() != recipe:
            self.force = True
        # The extension modules catch jb::Error thrown by the core: one unwinder for both, libgcc_s, whatever
        # LDFLAGS says (-static-libgcc; CMakeLists.txt drops it from the core's link for the same reason).
        for attr in ("linker_so", "linker_so_cxx"):
            if isinstance(getattr(self.compiler, attr, None), list):
                setattr(self.compiler, attr, [a for a in getattr(self.compiler, attr) if a != "-static-libgcc"])
        package_dir = ROOT / "juno_bridge" if self._into_source else Path(self.build_lib) / "juno_bridge"
        build_cpp(package_dir.resolve())
        for ext in self.extensions:
            ext.library_dirs.append(str(package_dir / "lib"))
            ext.include_dirs.append(str(package_dir / "include"))  # juno_bridge/version.h, generated by CMake
        super().build_extensions()
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(recipe)


class FreshBuildPy(build_py):
    """Drops from build/lib the modules the source no longer has: setuptools never deletes what it copied
    before, so a module moved or removed in the source would otherwise live on in every later wheel.
    (Only .py files: the compiled modules and the C++ stay, so a rebuild stays incremental.)"""

    def run(self):
        built = Path(self.build_lib)
        if not self.editable_mode and (built / "juno_bridge").is_dir():
            for module in (built / "juno_bridge").rglob("*.py"):
                if not (ROOT / module.relative_to(built)).exists():
                    module.unlink()
        super().run()


def extension(name: str, parts: str = "") -> Extension:
    """A Cython module of bridge/ linked to the core library beside it (rpath $ORIGIN/lib). `parts`: a glob of
    the .pxi files the module includes. Its dependencies (the .pxi parts, the .pxd declarations, the glue
    headers) are listed, so that a change to any of them builds it anew; cythonize follows the same ones."""
    bridge = ROOT / "bridge"
    depends = [*(bridge.glob(parts) if parts else ()), *bridge.glob("*.pxd"), *bridge.glob("juno_bridge/*.pxd"),
               *bridge.glob("*.hpp")]
    return Extension(
        f"juno_bridge.{name}",
        [f"bridge/{name}.pyx"],
        depends=sorted(str(path.relative_to(ROOT)) for path in depends),
        include_dirs=[*INCLUDE, str(ROOT / "bridge"), numpy.get_include()],
        libraries=["juno_bridge"],
        runtime_library_dirs=["$ORIGIN/lib"],
        # Only PyInit_* is exported (hidden visibility, a version script), and nothing of a static
        # libstdc++ (-static-libstdc++ in LDFLAGS): the process has its own.
        extra_compile_args=["-std=c++17", "-O2", "-g0", "-fvisibility=hidden", "-fvisibility-inlines-hidden"],
        extra_link_args=["-Wl,--exclude-libs,ALL",
                         f"-Wl,--version-script={ROOT / 'cmake' / 'exports' / 'python_module.map'}"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")],
        language="c++",
    )


extensions = [extension("_core", "_*.pxi"), extension("_hits")]

setup(
    ext_modules=cythonize(extensions, include_path=["bridge"], compiler_directives={"language_level": 3}),
    cmdclass={"build_py": FreshBuildPy, "build_ext": BuildWithCore},
)
