"""What CMake needs to know from a Python installation, found without importing the heavy packages:
prints CMake `set()` lines (included by the top-level CMakeLists.txt). Every value may be empty."""
import glob
import importlib.util
import os
import sys
from importlib import metadata


def package_dir(name):
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return ""
    return spec.submodule_search_locations[0] if spec and spec.submodule_search_locations else ""


def version(*dists):
    for dist in dists:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return ""


def onnxruntime_library():
    found = sorted(glob.glob(os.path.join(package_dir("onnxruntime"), "capi", "libonnxruntime.so.1.*")))
    return found[-1] if package_dir("onnxruntime") and found else ""


values = {
    "JB_PROBE_PREFIX": sys.prefix,
    "JB_PROBE_ONNXRUNTIME_LIBRARY": onnxruntime_library(),
    "JB_PROBE_TORCH_DIR": package_dir("torch"),
    "JB_PROBE_TORCH_VERSION": version("torch"),
}
for key, value in values.items():
    print(f'set({key} "{value}")')
