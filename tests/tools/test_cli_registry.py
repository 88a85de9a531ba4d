"""`juno-bridge info` and `bench --only` read the backend registry: every backend named, none invented."""
import importlib.metadata as metadata
import importlib.util
import json
import subprocess
import sys

import juno_bridge as jb
from juno_bridge import bench
from juno_bridge.cli import build_parser, library_version


def info() -> dict:
    done = subprocess.run([sys.executable, "-m", "juno_bridge.cli", "info", "--json"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_info_lists_every_backend_of_the_registry():
    listed = info()["backends"]
    registry = jb.backends()
    assert list(listed) == [b.name for b in registry]
    for b in registry:
        entry = listed[b.name]
        assert entry["kind"] == ("plugin" if b.plugin else "built in")
        assert entry["available"] == b.available and entry["extra"] == b.extra
        if b.plugin_path:
            assert entry["plugin"] == b.plugin_path
    assert listed["onnxruntime"]["available"] and listed["onnxruntime"]["kind"] == "built in"


def test_a_library_is_found_whatever_its_distribution_is_called():
    # tensorflow comes as tensorflow-cpu here: its version is that distribution's, not "not installed".
    for module in ("tensorflow", "numpy", "torch"):
        if importlib.util.find_spec(module) is None:
            assert library_version(module) == "not installed"
            continue
        dists = metadata.packages_distributions()[module]
        assert library_version(module) in {metadata.version(d) for d in dists}
    assert library_version("juno_bridge_no_such_module") == "not installed"
    assert info()["numpy"] == metadata.version("numpy")


def test_bench_groups_come_from_the_registry():
    names = {b.name for b in jb.backends()}
    assert {b.name for b in bench.GROUPS.values()} <= names
    assert set(bench.GROUPS) >= {"onnx", "torch", "tf", "python", "remote"}
    assert build_parser().parse_args(["bench", "--only", "remote", "onnx"]).only == ["remote", "onnx"]
    usage = subprocess.run([sys.executable, "-m", "juno_bridge.cli", "bench", "--only", "nope"], capture_output=True,
                           text=True, timeout=120)
    assert usage.returncode == 2 and "onnx" in usage.stderr
