"""Shared fixtures: model files built into tmp dirs, hypothesis profile, older ONNX Runtime releases; the
markers for optional libraries (tests/helpers/optional.py) and what they do."""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from helpers import onnx_models, optional

# Modest example counts: the whole suite must stay fast on a shared 2-core machine.
settings.register_profile("juno", max_examples=30, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
# JUNO_BRIDGE_HYPOTHESIS_PROFILE=thorough: many more examples, for hunting bugs rather than for CI.
settings.register_profile("thorough", parent=settings.get_profile("juno"), max_examples=1000)
settings.load_profile(os.environ.get("JUNO_BRIDGE_HYPOTHESIS_PROFILE", "juno"))


def pytest_configure(config):
    for name, (needs, _) in optional.OPTIONAL.items():
        config.addinivalue_line("markers", f"{name}: needs {needs}; skipped without it, failed without it "
                                           "under JUNO_BRIDGE_REQUIRE_ALL=1")
    # The Python children the tests start (`python -m juno_bridge.cli`, `python -c ...`) would put their
    # working directory first on sys.path; run from the repository root, that imports the source tree's
    # juno_bridge/, which lacks the compiled modules, instead of the installed package under test.
    os.environ["PYTHONSAFEPATH"] = "1"
    try:
        import juno_bridge._core  # noqa: F401
    except ImportError as e:
        raise pytest.UsageError(f"juno_bridge without its compiled modules was imported ({e}); "
                                "run `make install`, then that environment's `pytest` (or `python -P -m pytest`: "
                                "plain `python -m` puts the working directory on sys.path)") from e


# Areas whose every test needs one optional library: their files import its helper (tests/helpers/
# torch_models.py, tf_models.py, converter_models.py), which skips them at collection where it is missing.
AREA_MARKERS = {"torch": "torch", "tf": "tf", "converters": "converters"}


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        area = item.path.relative_to(here).parts[0] if item.path.is_relative_to(here) else None
        if area in AREA_MARKERS:
            item.add_marker(AREA_MARKERS[area])
        for name in dict.fromkeys(m.name for m in item.iter_markers() if m.name in optional.OPTIONAL):
            reason = optional.missing(name)
            if reason and not optional.REQUIRE_ALL:  # skipped, and reported at the test's own line
                item.add_marker(pytest.mark.skip(reason=f"{reason} (@pytest.mark.{name})"))


def pytest_runtest_setup(item):
    """Under JUNO_BRIDGE_REQUIRE_ALL=1, a test whose optional library is missing fails here."""
    for name in dict.fromkeys(m.name for m in item.iter_markers() if m.name in optional.OPTIONAL):
        optional.require(name)


# Older ONNX Runtime releases are cached outside the repo so reruns do not download them again.
ORT_CACHE = Path(os.environ.get("JUNO_BRIDGE_TEST_CACHE", Path.home() / ".cache" / "juno-bridge-test"))


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def model_path(model_dir):
    """model_path(name, builder, *args): the builder's model saved once per test session."""
    made: dict[str, Path] = {}

    def build(name: str, builder, *args, **kwargs) -> Path:
        if name not in made:
            made[name] = onnx_models.save(builder(*args, **kwargs), model_dir, name)
        return made[name]

    return build


@pytest.fixture(scope="session")
def add_f32(model_path) -> Path:
    return model_path("add_f32", onnx_models.add, np.float32)


@pytest.fixture
def add_session(add_f32):
    """c = a + b on float32, one intra-op thread, closed after the test."""
    import juno_bridge as jb

    with jb.Session(add_f32, intra_op_threads=1) as s:
        yield s


@pytest.fixture(scope="session")
def multi_io_model(model_path) -> Path:
    return model_path("multi_io", onnx_models.multi_io)


def install_onnxruntime(version: str, package: str = "onnxruntime") -> Path:
    """The capi/libonnxruntime.so.1.* of package==version (onnxruntime, onnxruntime-gpu), pip-installed
    once into the cache, in a folder of its own so that it never replaces the environment's wheel."""
    target = ORT_CACHE / (f"ort-{version}" if package == "onnxruntime" else f"ort-{package[12:]}-{version}")
    found = sorted(target.glob("onnxruntime/capi/libonnxruntime.so.1.*"))
    if not found:
        # --no-deps: only the shared library is needed, not a second numpy.
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
                               "--target", str(target), f"{package}=={version}"],
                              capture_output=True, text=True)
        found = sorted(target.glob("onnxruntime/capi/libonnxruntime.so.1.*"))
        if proc.returncode != 0 or not found:
            pytest.fail(f"could not install {package}=={version} into {target}: {proc.stderr[-2000:]}")
    return found[-1]


@pytest.fixture(scope="session")
def gpu_onnxruntime() -> Path:
    """The onnxruntime-gpu wheel's library: its CUDA provider is listed, and initialises only where CUDA
    and a GPU are there (elsewhere its CUDA libraries fail to load)."""
    return install_onnxruntime("1.31.1", "onnxruntime-gpu")


@pytest.fixture(scope="session")
def old_onnxruntime() -> Path:
    """An older release with a supported C API (20 >= our minimum 16)."""
    return install_onnxruntime("1.20.1")


@pytest.fixture(scope="session")
def too_old_onnxruntime() -> Path:
    """ONNX Runtime 1.15.1, whose C API (15) is below our minimum (16).

    The onnxruntime 1.15 wheels on PyPI ship only the pybind module, no C library (seen with
    `pip install --target`), so the same release's C library is taken from the npm package
    onnxruntime-node, which ships libonnxruntime.so.1.15.1 for linux/x64.
    """
    target = ORT_CACHE / "ort-node-1.15.1"
    library = target / "package" / "bin" / "napi-v3" / "linux" / "x64" / "libonnxruntime.so.1.15.1"
    if not library.exists():
        target.mkdir(parents=True, exist_ok=True)
        try:
            pack = subprocess.run(["npm", "pack", "--silent", "onnxruntime-node@1.15.1"], cwd=target,
                                  capture_output=True, text=True, timeout=600)
        except FileNotFoundError:
            pytest.fail("npm is needed to fetch ONNX Runtime 1.15.1's C library (onnxruntime-node@1.15.1)")
        tarball = target / "onnxruntime-node-1.15.1.tgz"
        if pack.returncode != 0 or not tarball.exists():
            pytest.fail(f"npm pack onnxruntime-node@1.15.1 failed: {pack.stderr[-2000:]}")
        member = "package/bin/napi-v3/linux/x64/libonnxruntime.so.1.15.1"
        with tarfile.open(tarball) as tar:
            tar.extractall(target, members=[tar.getmember(member)], filter="data")
        tarball.unlink()
    return library
