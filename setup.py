"""Builds the C++ core (libjuno_bridge.so), the optional backend plugins and the Cython module.

Layout inside the installed package, which C++ builds use through `juno-bridge config`:
    juno_bridge/lib/libjuno_bridge.so (+ plugins)   juno_bridge/include/juno_bridge/*.h*
    juno_bridge/cmake/juno_bridgeConfig.cmake       juno_bridge/_core.*.so (rpath $ORIGIN/lib)

The torch plugin is built only when torch is importable at build time (pip install
--no-build-isolation); JUNO_BRIDGE_REQUIRE_TORCH=1 turns its absence into a build failure. The
TensorFlow plugin is always built: it binds TensorFlow's C API at run time.
"""
from __future__ import annotations

import glob
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
CXX = os.environ.get("CXX", "g++")
CXXFLAGS = ["-std=c++17", "-O2", "-g0", "-fPIC", "-Wall", "-Wextra", "-Wno-unused-parameter"]
CORE_SOURCES = sorted(str(p) for p in (ROOT / "cpp" / "src").glob("*.cpp"))
INCLUDE = [str(ROOT / "cpp" / "include"), str(ROOT / "third_party" / "onnxruntime")]


def onnxruntime_library() -> str:
    """The onnxruntime wheel's C library, found without importing the module (recorded as a fallback)."""
    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        return ""
    found = sorted(glob.glob(os.path.join(spec.submodule_search_locations[0], "capi", "libonnxruntime.so.1.*")))
    return found[-1] if found else ""


def out_of_date(target: str, source: str) -> bool:
    """True when `target` is older than `source` or than any header (a rebuild in the same tree is quick)."""
    if not os.path.exists(target):
        return True
    headers = [*ROOT.glob("cpp/**/*.h*"), *ROOT.glob("third_party/**/*.h")]
    newest = max([os.path.getmtime(source), *(os.path.getmtime(h) for h in headers)])
    return os.path.getmtime(target) < newest


def run(cmd: list[str]) -> None:
    print(" ".join(shlex.quote(c) for c in cmd), flush=True)
    subprocess.run(cmd, check=True)


class BuildWithCore(build_ext):
    """Compiles the core library into the package before the extension that links to it."""

    def run(self):
        # setuptools clears `inplace` while it builds and copies only the extension afterwards.
        self._into_source = bool(self.inplace or getattr(self, "editable_mode", False))
        super().run()

    def build_extensions(self):
        package_dir = ROOT / "juno_bridge" if self._into_source else Path(self.build_lib) / "juno_bridge"
        lib_dir = package_dir / "lib"
        lib_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(self.build_temp) / "core"
        tmp.mkdir(parents=True, exist_ok=True)

        defines = [f'-DJB_BUILD_ONNXRUNTIME="{onnxruntime_library()}"']
        objects = [str(tmp / (Path(src).stem + ".o")) for src in CORE_SOURCES]
        stale = [(src, obj) for src, obj in zip(CORE_SOURCES, objects) if out_of_date(obj, src)]
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            list(pool.map(lambda so: run([CXX, *CXXFLAGS, *defines, *[f"-I{i}" for i in INCLUDE], "-c", so[0],
                                          "-o", so[1]]), stale))
        run([CXX, "-shared", "-o", str(lib_dir / "libjuno_bridge.so"), *objects,
             "-Wl,-soname,libjuno_bridge.so", "-ldl", "-pthread"])
        self.build_plugins(lib_dir, tmp)
        build_bench_loops(package_dir, lib_dir)
        self.install_headers_and_cmake(package_dir)

        for ext in self.extensions:
            ext.library_dirs.append(str(lib_dir))
        super().build_extensions()

    def build_plugins(self, lib_dir: Path, tmp: Path) -> None:
        """Builds each plugin under cpp/plugins/ whose dependency is importable (see plugin_builds)."""
        for name, build in plugin_builds().items():
            build(lib_dir, tmp)

    def install_headers_and_cmake(self, package_dir: Path) -> None:
        include = package_dir / "include" / "juno_bridge"
        if include.exists():
            shutil.rmtree(include)
        shutil.copytree(ROOT / "cpp" / "include" / "juno_bridge", include)
        cmake = package_dir / "cmake"
        cmake.mkdir(exist_ok=True)
        shutil.copy(ROOT / "cpp" / "cmake" / "juno_bridgeConfig.cmake", cmake / "juno_bridgeConfig.cmake")
        version = (ROOT / "juno_bridge" / "VERSION").read_text().strip()
        (cmake / "juno_bridgeConfigVersion.cmake").write_text(
            f'set(PACKAGE_VERSION "{version}")\n'
            'if(PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION)\n'
            '  set(PACKAGE_VERSION_COMPATIBLE FALSE)\nelse()\n  set(PACKAGE_VERSION_COMPATIBLE TRUE)\n'
            '  if(PACKAGE_FIND_VERSION STREQUAL PACKAGE_VERSION)\n    set(PACKAGE_VERSION_EXACT TRUE)\n'
            '  endif()\nendif()\n')


def build_bench_loops(package_dir: Path, lib_dir: Path) -> None:
    """Compiles the benchmark loops of `juno-bridge bench` (cpp/examples/) into juno_bridge/bin/:
    jb-bench-loop (C++, over libjuno_bridge, found by rpath) and jb-ort-raw-loop (C, only -ldl)."""
    bin_dir = package_dir / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    examples = ROOT / "cpp" / "examples"
    bench_loop, raw_loop = bin_dir / "jb-bench-loop", bin_dir / "jb-ort-raw-loop"
    if out_of_date(str(bench_loop), str(examples / "bench_loop.cpp")):
        run([CXX, "-std=c++17", "-O2", "-g0", "-Wall", "-Wextra", f"-I{ROOT / 'cpp' / 'include'}",
             str(examples / "bench_loop.cpp"), "-o", str(bench_loop), f"-L{lib_dir}", "-ljuno_bridge",
             "-Wl,-rpath,$ORIGIN/../lib"])
    host = bin_dir / "jb-framework-host"  # the demo's "offline framework" event loop
    if out_of_date(str(host), str(examples / "framework_host.cpp")):
        run([CXX, "-std=c++17", "-O2", "-g0", "-Wall", "-Wextra", f"-I{ROOT / 'cpp' / 'include'}",
             str(examples / "framework_host.cpp"), "-o", str(host), f"-L{lib_dir}", "-ljuno_bridge",
             "-Wl,-rpath,$ORIGIN/../lib"])
    if out_of_date(str(raw_loop), str(examples / "ort_raw_loop.c")):
        run([os.environ.get("CC", "gcc"), "-std=c11", "-O2", "-g0", "-Wall", "-Wextra",
             f"-I{ROOT / 'third_party' / 'onnxruntime'}", str(examples / "ort_raw_loop.c"), "-o", str(raw_loop),
             "-ldl", "-lm"])


def build_python_plugin(lib_dir: Path, tmp: Path) -> None:
    """libjuno_bridge_python.so: links this interpreter's libpython (built --enable-shared), never the core."""
    import sysconfig
    libdir = sysconfig.get_config_var("LIBDIR")
    ldlibrary = sysconfig.get_config_var("LDLIBRARY") or ""
    if not ldlibrary.endswith(".so"):
        raise RuntimeError(f"the python plugin needs a shared libpython (--enable-shared); this one has {ldlibrary!r}")
    source = ROOT / "cpp" / "plugins" / "python_backend.cpp"
    target = lib_dir / "libjuno_bridge_python.so"
    python = [f"-I{sysconfig.get_paths()['include']}", f"-L{libdir}", f"-l{ldlibrary[3:-3]}", f"-Wl,-rpath,{libdir}"]
    if out_of_date(str(target), str(source)):
        run([CXX, *CXXFLAGS, "-shared", "-fvisibility=hidden", *[f"-I{i}" for i in INCLUDE], f"-I{numpy.get_include()}",
             str(source), "-o", str(target), *python, "-ldl", "-pthread"])
    # The benchmark's JUNO-style baseline embeds Python itself, so it is built here with the same flags.
    bench = ROOT / "cpp" / "examples" / "python_method_bench.cpp"
    bin_dir = lib_dir.parent / "bin"
    bin_dir.mkdir(exist_ok=True)
    if out_of_date(str(bin_dir / bench.stem), str(bench)):
        run([CXX, *CXXFLAGS, *[f"-I{i}" for i in INCLUDE], str(bench), "-o", str(bin_dir / bench.stem),
             f"-L{lib_dir}", "-ljuno_bridge", "-Wl,-rpath,$ORIGIN/../lib", *python, "-pthread"])


def build_torch_plugin(lib_dir: Path, tmp: Path) -> None:
    """libjuno_bridge_torch.so against the importable torch (its headers, its lib/ by rpath), or nothing."""
    target = lib_dir / "libjuno_bridge_torch.so"
    try:
        import torch
        from torch.utils import cpp_extension
    except ImportError as e:
        if os.environ.get("JUNO_BRIDGE_REQUIRE_TORCH") == "1":
            raise SystemExit(f"JUNO_BRIDGE_REQUIRE_TORCH=1 but torch cannot be imported ({e}): install "
                             "torch==2.13.0 (CPU) first and build with pip install --no-build-isolation") from e
        print(f"juno-bridge: torch not importable ({e}); the torch plugin is not built", flush=True)
        target.unlink(missing_ok=True)  # a stale plugin would not match this build
        return
    torch_lib = cpp_extension.library_paths()[0]
    # C++20: torch's headers use C++20 bit-field initializers and warn under C++17.
    flags = [*(f if f != "-std=c++17" else "-std=c++20" for f in CXXFLAGS),
             f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}",
             *[f"-I{i}" for i in [*INCLUDE, *cpp_extension.include_paths()]]]
    sources = sorted(str(p) for p in (ROOT / "cpp" / "plugins").glob("torch_*.cpp"))
    objects = [str(tmp / (Path(src).stem + ".o")) for src in sources]
    for src, obj in zip(sources, objects):
        if out_of_date(obj, src):
            run([CXX, *flags, "-c", src, "-o", obj])
    # No link to libjuno_bridge: the plugin reports errors through the host table it is given.
    run([CXX, "-shared", "-o", str(target), *objects, f"-L{torch_lib}", "-ltorch", "-ltorch_cpu", "-lc10",
         f"-Wl,-rpath,{torch_lib}", "-Wl,-soname,libjuno_bridge_torch.so", "-pthread"])
    # The torch benchmark's C++ loop (row (d)) is compiled on the user's machine against the package.
    examples = lib_dir.parent / "examples"
    examples.mkdir(exist_ok=True)
    shutil.copy(ROOT / "cpp" / "examples" / "bench_torch_loop.cpp", examples / "bench_torch_loop.cpp")


def build_tf_plugin(lib_dir: Path, tmp: Path) -> None:
    """libjuno_bridge_tf.so, always: no TensorFlow at build time and no link to it. The plugin declares
    TensorFlow's C API itself (third_party/tensorflow/tf_abi.h) and binds a release at run time."""
    target = lib_dir / "libjuno_bridge_tf.so"
    # platform.cpp: the core's dlopen helpers, compiled in (hidden) since the plugin never links the core.
    sources = [*sorted(str(p) for p in (ROOT / "cpp" / "plugins").glob("tf_*.cpp")),
               str(ROOT / "cpp" / "src" / "platform.cpp")]
    flags = [*CXXFLAGS, "-fvisibility=hidden",
             *[f"-I{i}" for i in [*INCLUDE, ROOT / "cpp" / "src", ROOT / "third_party" / "tensorflow"]]]
    objects = [str(tmp / ("tf_plugin_" + Path(src).stem + ".o")) for src in sources]
    for src, obj in zip(sources, objects):
        if out_of_date(obj, src):
            run([CXX, *flags, "-c", src, "-o", obj])
    run([CXX, "-shared", "-o", str(target), *objects, "-Wl,-soname,libjuno_bridge_tf.so", "-ldl", "-pthread"])


def plugin_builds() -> dict:
    """Plugin name -> function that builds it (each decides whether its dependency is there)."""
    return {
        "python": build_python_plugin,  # always: the Python running this build is there
        "torch": build_torch_plugin,    # only when torch is importable (JUNO_BRIDGE_REQUIRE_TORCH=1: must be)
        "tf": build_tf_plugin,          # always: TensorFlow is found at run time
    }


def extension(name: str) -> Extension:
    """A Cython module of bridge/ linked to the core library beside it (rpath $ORIGIN/lib)."""
    return Extension(
        f"juno_bridge.{name}",
        [f"bridge/{name}.pyx"],
        include_dirs=[*INCLUDE, str(ROOT / "bridge"), numpy.get_include()],
        libraries=["juno_bridge"],
        runtime_library_dirs=["$ORIGIN/lib"],
        extra_compile_args=["-std=c++17", "-O2", "-g0"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")],
        language="c++",
    )


extensions = [extension("_core"), extension("_hits")]

setup(
    ext_modules=cythonize(extensions, include_path=["bridge"], compiler_directives={"language_level": 3}),
    cmdclass={"build_ext": BuildWithCore},
)
