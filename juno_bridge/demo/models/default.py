"""The default vertex and energy model: a network trained on toy events (architecture and why:
``juno_bridge.demo.models.network``; training: ``juno-bridge train``). Input ``pmt`` [B, 2, 17612]
float32 (nPE, first-hit time), outputs ``vertex`` [B, 3] (m) and ``energy`` [B] (MeV).

What ships in the package, written by ``juno-bridge train`` and copied here:
``default_weights.npz`` (the learned arrays), ``default_model.json`` (provenance, loss history,
ablation) and ``default.onnx`` (the ONNX export, so running the model needs neither torch nor
TensorFlow). Every other form is made from the weights on first use, into the cache:

=================  ============================================  =========================
form               made by                                       runs through
=================  ============================================  =========================
``.onnx``          shipped (``export_onnx``)                     ONNX Runtime (C API)
``.pt2`` / ``.pt`` ``torch_models`` (AOTInductor, TorchScript)  the libtorch plugin
SavedModel         ``saved_model`` (the same network in Keras)   the TensorFlow plugin
``python:``        ``default_algorithm`` (the torch module)      the Python plugin
=================  ============================================  =========================

The centroid model this one replaced is ``baseline``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from juno_bridge.atomic_file import staged

import numpy as np

MODEL_REVISION = "n3"   # bumped whenever the graph or the weights change: the cached forms follow it
_HERE = Path(__file__).parent
WEIGHTS = _HERE / "default_weights.npz"
REPORT = _HERE / "default_model.json"
ONNX = _HERE / "default.onnx"
OPSET = 17   # read by every ONNX Runtime from 1.16 on


def weights(path: str | os.PathLike = WEIGHTS) -> dict[str, np.ndarray]:
    """The learned arrays (time-response tables, head), as float32 numpy arrays."""
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def report() -> dict:
    """Provenance of the shipped weights: training configuration, loss history, ablation."""
    return json.loads(REPORT.read_text())


def torch_module(arrays: dict[str, np.ndarray] | None = None):
    """The network as a torch.nn.Module in eval mode, with the shipped weights (or ``arrays``)."""
    from juno_bridge.demo.models.network import VertexEnergyNet

    return VertexEnergyNet(weights() if arrays is None else arrays).eval()


def prepare() -> None:
    """Builds the torch module ``reconstruct`` calls (importing torch), once; its first call does it otherwise."""
    global _MODULE
    if "_MODULE" not in globals():
        _MODULE = torch_module()


def reconstruct(pmt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The model from Python: ``pmt`` [B, 2, 17612] float32 -> vertex [B, 3], energy [B] (float32).
    The torch module, built once; torch's tensors share the numpy buffers both ways (no copy)."""
    import warnings

    import torch

    prepare()
    with torch.inference_mode(), warnings.catch_warnings():
        # the bridge lends inputs read-only; the module only reads them
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)
        vertex, energy = _MODULE(torch.from_numpy(pmt))
    return vertex.numpy(), energy.numpy()


def export_onnx(module, path: str | os.PathLike) -> Path:
    """Writes ``module`` (a VertexEnergyNet) as ONNX with a dynamic batch and the revision in its
    metadata; atomically (a temporary name, then a rename)."""
    import warnings

    import onnx
    import torch

    from juno_bridge.demo.toymc import generate

    path = Path(path)
    example = torch.from_numpy(generate(2, seed=1).dense())   # real events: the trace takes every branch
    with staged(path) as tmp, warnings.catch_warnings(), torch.no_grad():
        # the TorchScript-based exporter: the dynamo one needs onnxscript, one more large dependency
        warnings.filterwarnings("ignore", category=DeprecationWarning,
                                message=".*legacy TorchScript-based ONNX export.*")
        torch.onnx.export(module.eval(), (example,), str(tmp), dynamo=False, opset_version=OPSET,
                          input_names=["pmt"], output_names=["vertex", "energy"],
                          dynamic_axes={"pmt": {0: "B"}, "vertex": {0: "B"}, "energy": {0: "B"}})
        model = onnx.load(str(tmp))
        model.doc_string = "juno-bridge default model: vertex and energy from LPMT nPE and first-hit time"
        onnx.helper.set_model_props(model, {"juno_bridge.revision": MODEL_REVISION,
                                            "units": "vertex m, energy MeV"})
        onnx.checker.check_model(model)
        onnx.save(model, str(tmp))
    return path


def onnx_model() -> Path:
    """The shipped ONNX file of the default model."""
    return ONNX


def torch_models(cache: Path) -> tuple[Path, Path, object]:
    """The default model as .pt2 and .pt in ``cache``, and its module (``forms.torch_forms``)."""
    from juno_bridge.demo.models.forms import torch_forms

    return torch_forms(torch_module, f"default-{MODEL_REVISION}", cache)
