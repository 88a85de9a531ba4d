"""The optional libraries and tools some tests need, one marker each (registered from this table by
tests/conftest.py). Where one is missing its tests are skipped with the reason, except when
JUNO_BRIDGE_REQUIRE_ALL=1 (our CI, `make test`): there a missing one fails the test, so that nothing is
silently skipped."""
from __future__ import annotations

import functools
import importlib.util
import os
import shutil
from typing import Callable

import pytest

REQUIRE_ALL = os.environ.get("JUNO_BRIDGE_REQUIRE_ALL", "") not in ("", "0")


def _module(name: str, extra: str) -> Callable[[], str | None]:
    def check() -> str | None:
        try:
            found = importlib.util.find_spec(name) is not None
        except ImportError:  # the parent package of a dotted name is missing
            found = False
        return None if found else f"{name} is not installed (pip extra '{extra}')"
    return check


def _modules(names: tuple[str, ...], extra: str) -> Callable[[], str | None]:
    """All of `names` must be importable."""
    def check() -> str | None:
        missing = [name for name in names if _module(name, extra)()]
        if not missing:
            return None
        return f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed (pip extra '{extra}')"
    return check


def _backend(module: str, extra: str, backend: str) -> Callable[[], str | None]:
    """The library must import, and the backend's plugin must have been built against it."""
    library = _module(module, extra)

    def check() -> str | None:
        missing = library()
        if missing:
            return missing
        import juno_bridge
        info = next(b for b in juno_bridge.backends() if b.name == backend)
        return None if info.available else (f"the {backend} plugin ({info.plugin}) was not built "
                                            f"({module} was not importable when juno-bridge was built)")
    return check


def _tool(name: str) -> Callable[[], str | None]:
    return lambda: None if shutil.which(name) else f"'{name}' is not on PATH"


# marker name -> (what it needs, for `pytest --markers`; the check, which returns why it is missing or None)
OPTIONAL: dict[str, tuple[str, Callable[[], str | None]]] = {
    "torch": ("torch and the torch plugin", _backend("torch", "torch", "torch")),
    "tf": ("tensorflow and the tf plugin", _backend("tensorflow", "tf", "tf")),
    "onnxscript": ("onnxscript (torch.onnx.export(dynamo=True))", _module("onnxscript", "torch")),
    "triton": ("the Triton client (tritonclient[grpc])", _module("tritonclient.grpc", "triton")),
    "dask": ("dask.distributed", _module("dask.distributed", "dask")),
    "hdf5": ("h5py", _module("h5py", "hdf5")),
    "root": ("uproot (ROOT files)", _module("uproot", "root")),
    "converters": ("the model converters and their libraries (skl2onnx, onnxmltools, onnxconverter-common, "
                   "scikit-learn, lightgbm, xgboost)",
                   _modules(("skl2onnx", "onnxmltools", "onnxconverter_common", "sklearn", "lightgbm", "xgboost"),
                            "converters")),
    "npm": ("npm (fetches an old ONNX Runtime C library)", _tool("npm")),
    "cc": ("a C compiler ($CC, else gcc)", _tool(os.environ.get("CC", "gcc"))),
    "cxx": ("a C++ compiler ($CXX, else g++)", _tool(os.environ.get("CXX", "g++"))),
}


@functools.cache
def missing(marker: str) -> str | None:
    """Why what `marker` needs is missing, or None when it is here."""
    return OPTIONAL[marker][1]()


def unavailable(reason: str) -> None:
    """Skips (at module level too) for want of something optional; fails under JUNO_BRIDGE_REQUIRE_ALL=1."""
    if REQUIRE_ALL:
        pytest.fail(f"{reason}, and JUNO_BRIDGE_REQUIRE_ALL=1 requires everything optional", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require(marker: str) -> None:
    """What `@pytest.mark.<marker>` does (tests/conftest.py), for modules that need it at import."""
    reason = missing(marker)
    if reason is not None:
        unavailable(f"{reason} (@pytest.mark.{marker})")


def require_tool(name: str) -> str:
    """The path of a program a test runs."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"'{name}' is not installed")
    return path
