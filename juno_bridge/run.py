"""`juno-bridge run`: inference over an event file, in batches, with a progress bar.

Input: an ``.npz`` or HDF5 (``.h5``/``.hdf5``) file holding one array per model input, named after the
input, with events along the first axis. Output: the same format (by the output file's suffix) with
one array per model output. Batches are views into the loaded arrays and outputs are written in place
into slices of the output arrays, so nothing is copied between the file and the model.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from juno_bridge.errors import InputError, InvalidArgumentError

HDF5_SUFFIXES = (".h5", ".hdf5")


def _h5py():
    try:
        import h5py
    except ImportError as err:  # an optional extra: say how to get it
        raise InvalidArgumentError("HDF5 files need h5py: pip install 'juno-bridge[hdf5]'") from err
    return h5py


def read_inputs(path: str | os.PathLike, names: list[str]) -> dict[str, np.ndarray]:
    """The model's inputs from an event file, as C-contiguous arrays."""
    path = Path(path)
    if not path.exists():
        raise InvalidArgumentError(f"input file '{path}' does not exist")
    if path.suffix in HDF5_SUFFIXES:
        with _h5py().File(path, "r") as f:
            available = list(f.keys())
            arrays = {n: np.ascontiguousarray(f[n][...]) for n in names if n in f}
    elif path.suffix == ".npz":
        with np.load(path) as f:
            available = list(f.files)
            arrays = {n: np.ascontiguousarray(f[n]) for n in names if n in f.files}
    else:
        raise InvalidArgumentError(f"input file '{path}': expected .npz, .h5 or .hdf5")
    missing = [n for n in names if n not in arrays]
    if missing:
        raise InputError(f"input file '{path}' lacks the model input(s) {', '.join(missing)}; "
                         f"it holds {', '.join(available) or 'nothing'}")
    counts = {n: len(a) for n, a in arrays.items()}
    if len(set(counts.values())) != 1:
        raise InputError(f"input file '{path}': inputs have different event counts {counts}")
    return arrays


def write_outputs(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Writes atomically: a temporary name in the same directory, then a rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    if path.suffix in HDF5_SUFFIXES:
        with _h5py().File(tmp, "w") as f:
            for name, array in arrays.items():
                f.create_dataset(name, data=array)
    elif path.suffix == ".npz":
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    else:
        raise InvalidArgumentError(f"output file '{path}': expected .npz, .h5 or .hdf5")
    os.replace(tmp, path)


def run_file(session, input_path, output_path, batch_size: int = 256, progress: bool = True) -> int:
    """Runs ``session`` over every event of ``input_path``; returns the number of events."""
    if batch_size < 1:
        raise InvalidArgumentError(f"batch size must be >= 1, got {batch_size}")
    from tqdm import tqdm

    names = [i.name for i in session.inputs()]
    inputs = read_inputs(input_path, names)
    n_events = len(next(iter(inputs.values())))
    if n_events == 0:
        raise InputError(f"input file '{input_path}' holds no events")
    outputs: dict[str, np.ndarray] = {}
    with tqdm(total=n_events, unit="ev", disable=not progress, desc=Path(input_path).name) as bar:
        for start in range(0, n_events, batch_size):
            stop = min(start + batch_size, n_events)
            batch = {n: a[start:stop] for n, a in inputs.items()}  # views, still C-contiguous
            if not outputs:
                # The first batch tells the per-event output shapes; later batches are written in place.
                first = session.run(batch)
                outputs = {n: np.empty((n_events, *a.shape[1:]), a.dtype) for n, a in first.items()}
                for n, a in first.items():
                    outputs[n][start:stop] = a
            else:
                session.run(batch, out={n: a[start:stop] for n, a in outputs.items()})
            bar.update(stop - start)
    write_outputs(output_path, outputs)
    return n_events
