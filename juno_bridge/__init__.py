"""juno-bridge: one zero-copy interface, from C++ and from Python, to the ways a JUNO job runs a model.

    import juno_bridge as jb
    s = jb.Session("vertex.onnx", intra_op_threads=1)
    out = s.run({"pmt": batch})            # dict name -> numpy array
    s.run({"pmt": batch}, out={"y": y})    # written in place into y
"""
import logging
from pathlib import Path

from juno_bridge.errors import (BackendUnavailableError, Error, InputError, InputTypeError,
                                InvalidArgumentError, ModelLoadError, RunError, UnsupportedError)
from juno_bridge.tensor_info import TensorInfo

try:
    from juno_bridge._core import (SUPPORTED_DTYPES, Runtime, RuntimeMemory, Session, get_log_level,
                                   onnxruntime_info, set_log_level)
except ModuleNotFoundError as _missing:
    if _missing.name != "juno_bridge._core":
        raise
    # A source checkout found before the installed package (the working directory, or a PYTHONPATH such as
    # the one a SNiPER setup.sh leaves) has no compiled modules: say which folder and what to do, in one line.
    raise ImportError(
        f"juno_bridge was imported from {Path(__file__).parent}, a source checkout without its compiled modules "
        f"(_core): run from another folder or take that checkout off PYTHONPATH, so that the installed juno_bridge "
        f"is found (install it with `make install` or `pip install .`)", name=__name__) from None
from juno_bridge.algorithm import ReleasedViewError, algorithm
from juno_bridge._hits import BatchAssembler, scatter_hits
from juno_bridge.aligned import empty
from juno_bridge.backends import BackendInfo, backends

__version__ = (Path(__file__).with_name("VERSION")).read_text().strip()

# A library's log lines (ONNX Runtime's, forwarded) show only where the application configures logging:
# an error also comes as our exception, so Python's last-resort stderr handler would print it twice.
logging.getLogger("juno_bridge").addHandler(logging.NullHandler())



def __getattr__(name):
    # torch is heavy and optional: imported only when its exporter is asked for.
    if name == "export_torch":
        from juno_bridge.torch_export import export_torch
        return export_torch
    raise AttributeError(f"module 'juno_bridge' has no attribute {name!r}")


__all__ = [
    "Session", "Runtime", "set_log_level", "get_log_level", "backends", "BackendInfo", "export_torch", "TensorInfo",
    "onnxruntime_info", "SUPPORTED_DTYPES", "RuntimeMemory",
    "Error", "InvalidArgumentError", "InputError", "InputTypeError", "ModelLoadError",
    "BackendUnavailableError", "RunError", "UnsupportedError",
    "algorithm", "ReleasedViewError", "scatter_hits", "BatchAssembler", "empty",
]
