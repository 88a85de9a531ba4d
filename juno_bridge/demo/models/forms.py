"""The files a model of the demo is run from, besides ONNX: .pt2 and .pt exported from its torch module."""
from __future__ import annotations

from pathlib import Path

from juno_bridge.atomic_file import staged
from juno_bridge.demo.detector import N_LPMT


def torch_forms(make_module, stem: str, cache) -> tuple[Path, Path, object]:
    """``make_module()`` as .pt2 (AOTInductor, compiled for this CPU) and .pt (TorchScript), exported
    into ``cache`` as ``stem``.pt2/.pt on first use (a .pt2 is tied to the CPU it was compiled on:
    never shipped), and the module itself. Input ``pmt`` [B, 2, 17612], outputs ``vertex``, ``energy``.
    Raises BackendUnavailableError when torch or the torch plugin is missing."""
    from juno_bridge import paths
    from juno_bridge.errors import BackendUnavailableError

    if "torch" not in paths.plugins():
        raise BackendUnavailableError("the torch plugin was not built (install with the torch extra and rebuild)")
    try:
        import torch
    except ImportError as err:
        raise BackendUnavailableError("torch is not installed") from err
    import juno_bridge as jb

    module = make_module()
    pt2, pt = Path(cache) / f"{stem}.pt2", Path(cache) / f"{stem}.pt"
    example = torch.zeros((4, 2, N_LPMT), dtype=torch.float32)
    for path in (pt2, pt):
        if not path.exists():
            with staged(path) as tmp:  # the model and any sidecar it writes beside it
                jb.export_torch(module, (example,), tmp, dynamic_batch=True, input_names=["pmt"],
                                output_names=["vertex", "energy"])
    return pt2, pt, module


def vertex_energy_algorithm(reconstruct, prepare=None):
    """``reconstruct(pmt) -> (vertex, energy)`` as a Python algorithm of the demo models' signature
    (``python:module:callable`` names the result). ``prepare()``, when given, runs as a session opens the
    algorithm (the result is then a class, made once per session), so that what ``reconstruct`` would do in
    its first call (import torch, build the module: seconds) is not paid inside a framework's event loop."""
    from juno_bridge.algorithm import algorithm

    declare = algorithm(inputs={"pmt": ("float32", ("B", 2, N_LPMT))},
                        outputs={"vertex": ("float32", ("B", 3)), "energy": ("float32", ("B",))})

    def run(inputs, outputs):
        vertex, energy = reconstruct(inputs["pmt"])
        outputs["vertex"][...] = vertex
        outputs["energy"][...] = energy

    if prepare is None:
        return declare(run)

    class Prepared:
        def __init__(self):
            prepare()

        def __call__(self, inputs, outputs):
            run(inputs, outputs)

    return declare(Prepared)
