"""`juno-bridge run`: inference over an event file, in batches, with a progress bar; over many files on Dask.

Input: an ``.npz`` or HDF5 (``.h5``/``.hdf5``) file holding one array per model input, named after the
input, with events along the first axis; or, for a model of one input, a sparse-hits HDF5 file
(``juno-bridge toymc --out``, layout in ``juno_bridge.hits_file``), scattered to dense events per batch; or
a ROOT file (``.root``): a TTree of one branch per model input, or of sparse hits, read batch by batch
(layouts and tree names in ``juno_bridge.root_file``). Output, by the output file's suffix whatever the
input's: ``.npz`` or HDF5 with one array per model output, or ``.root``, a TTree ``outputs`` of the events'
ids and one branch per model output, extended batch by batch. Batches of .npz and HDF5 files are views
into the loaded arrays and outputs are written in place into slices of the output arrays (for ROOT, into
one reused batch buffer), so nothing is copied between the file and the model.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from juno_bridge import hits_file, root_file
from juno_bridge.atomic_file import reason, replacing, sweep_temporaries
from juno_bridge.errors import InputError, InvalidArgumentError, RunError
from juno_bridge.hits_file import h5py_module

HDF5_SUFFIXES = (".h5", ".hdf5")
SUFFIXES = (".npz", *HDF5_SUFFIXES, root_file.SUFFIX)


def read_inputs(path: str | os.PathLike, names: list[str]) -> dict[str, np.ndarray]:
    """The model's inputs from an event file, as C-contiguous arrays."""
    path = Path(path)
    if not path.exists():
        raise InvalidArgumentError(f"input file '{path}' does not exist")
    if path.suffix in HDF5_SUFFIXES and (hits := _hits_inputs(path, names)):
        return hits
    if path.suffix in HDF5_SUFFIXES:
        with h5py_module().File(path, "r") as f:
            available = list(f.keys())
            arrays = {n: np.ascontiguousarray(f[n][...]) for n in names if n in f}
    elif path.suffix == ".npz":
        with np.load(path) as f:
            available = list(f.files)
            arrays = {n: np.ascontiguousarray(f[n]) for n in names if n in f.files}
    else:
        raise InvalidArgumentError(f"input file '{path}': expected {', '.join(SUFFIXES)}")
    missing = [n for n in names if n not in arrays]
    if missing:
        raise InputError(f"input file '{path}' lacks the model input(s) {', '.join(missing)}; "
                         f"it holds {', '.join(available) or 'nothing'}")
    counts = {n: len(a) for n, a in arrays.items()}
    if len(set(counts.values())) != 1:
        raise InputError(f"input file '{path}': inputs have different event counts {counts}")
    return arrays


def _hits_inputs(path: Path, names: list[str]) -> dict | None:
    """A sparse-hits file as the one input of a model: dense events, scattered batch by batch."""
    with h5py_module().File(path, "r") as f:
        if any(n in f for n in names) or not hits_file.is_hits_file(f):
            return None
    if len(names) != 1:
        raise InputError(f"input file '{path}' holds sparse hits, which feed a model of one input; "
                         f"this model takes {', '.join(names)}")
    return {names[0]: hits_file.DenseEvents(path)}


def write_outputs(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Writes an .npz or HDF5 output file atomically and durably (``juno_bridge.atomic_file``): ``path``
    either does not exist or is complete, even after a crash. A full disk, a read-only or unwritable folder
    is a RunError naming the file; nothing is left behind."""
    path = Path(path)
    if path.suffix not in (*HDF5_SUFFIXES, ".npz"):
        raise InvalidArgumentError(f"output file '{path}': expected .npz, .h5 or .hdf5")
    with replacing(path) as tmp:
        if path.suffix in HDF5_SUFFIXES:
            with h5py_module().File(tmp, "w") as f:
                for name, array in arrays.items():
                    f.create_dataset(name, data=array)
        else:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)


def complete_output(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a whole output file a resumed run may skip: it opens, holds at least one array
    and all its arrays have the same event count (read from the headers, not the data; for ROOT, the
    ``outputs`` tree's metadata and the file's length its header gives). A truncated or foreign file is not
    done."""
    path = Path(path)
    if path.suffix == root_file.SUFFIX:
        return root_file.complete(path)
    try:
        if path.suffix in HDF5_SUFFIXES:
            with h5py_module().File(path, "r") as f:
                counts = {len(f[n]) for n in f.keys()}
        else:
            counts = {shape[0] if shape else None for shape in _npz_shapes(path)}
    except Exception:  # whatever a damaged file raises: numpy, zipfile, h5py
        return False
    return len(counts) == 1


def _check_writable(directory: str | os.PathLike) -> None:
    """A read-only or unwritable output folder is one clear error before any work, not one per file."""
    import tempfile

    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".juno-bridge-probe-"):
            pass
    except OSError as err:
        raise RunError(f"output folder '{directory}' is not writable: {reason(err)}") from err


def _npz_shapes(path: Path) -> list[tuple]:
    """The shapes of an .npz file's arrays from their headers (the archive's directory is at its end, so a
    truncated file fails here), without reading the data."""
    import zipfile

    shapes = []
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            with archive.open(member) as f:
                major, _ = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                shapes.append(read(f)[0])
    return shapes


class _ArrayEvents:
    """The events of an .npz or HDF5 file, in batches: views into the loaded arrays (or dense events
    scattered from a hits file). The same face as ``root_file.TreeEvents``."""

    def __init__(self, arrays: dict):
        self.arrays = arrays

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    def __enter__(self) -> "_ArrayEvents":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def batches(self, batch_size: int) -> Iterator[tuple[int, None, dict]]:
        for start in range(0, len(self), batch_size):
            yield start, None, {n: a[start:start + batch_size] for n, a in self.arrays.items()}  # C-contiguous


def open_events(path: str | os.PathLike, names: list[str], tree: str | None = None):
    """The events of an input file as batches of the model inputs ``names`` (a context manager); ``tree``
    names the TTree of a ROOT file (default: ``events``, else the only one)."""
    if Path(path).suffix == root_file.SUFFIX:
        if not Path(path).exists():
            raise InvalidArgumentError(f"input file '{path}' does not exist")
        return root_file.TreeEvents(path, names, tree)
    return _ArrayEvents(read_inputs(path, names))


class _WholeArrays:
    """.npz/HDF5 outputs: whole arrays in memory, each batch written in place into its slice."""

    def __init__(self, n_events: int):
        self.n_events = n_events
        self.arrays: dict[str, np.ndarray] = {}

    def slots(self, start: int, stop: int) -> dict | None:
        return {n: a[start:stop] for n, a in self.arrays.items()} or None

    def filled(self, start: int, stop: int, outputs: dict, event_ids) -> None:
        if not self.arrays:  # the first batch tells the per-event output shapes
            self.arrays = {n: np.empty((self.n_events, *a.shape[1:]), a.dtype) for n, a in outputs.items()}
            for n, a in outputs.items():
                self.arrays[n][start:stop] = a


class _TreeBatches:
    """ROOT outputs: each batch extends the output tree; the model writes into one reused batch buffer."""

    def __init__(self, tree: root_file.OutputTree):
        self.tree = tree
        self.buffers: dict[str, np.ndarray] = {}

    def slots(self, start: int, stop: int) -> dict | None:
        return {n: b[:stop - start] for n, b in self.buffers.items()} or None

    def filled(self, start: int, stop: int, outputs: dict, event_ids) -> None:
        if not self.buffers:  # the first batch is the largest
            self.buffers = {n: np.empty_like(a) for n, a in outputs.items()}
        self.tree.extend(np.arange(start, stop) if event_ids is None else event_ids, outputs)


@contextmanager
def _outputs(path: Path, n_events: int):
    """Where a run's outputs go, by the output file's suffix; the file appears (atomically) only when the
    block ends without an error."""
    if path.suffix == root_file.SUFFIX:
        with replacing(path) as tmp, root_file.OutputTree(tmp) as tree:
            yield _TreeBatches(tree)
    else:
        whole = _WholeArrays(n_events)
        yield whole
        write_outputs(path, whole.arrays)


def run_file(session, input_path, output_path, batch_size: int = 256, progress: bool = True,
             tree: str | None = None) -> int:
    """Runs ``session`` over every event of ``input_path``; returns the number of events. ``tree`` names
    the input TTree of a ROOT file."""
    if batch_size < 1:
        raise InvalidArgumentError(f"batch size must be >= 1, got {batch_size}")
    output_path = Path(output_path)
    if output_path.suffix not in SUFFIXES:
        raise InvalidArgumentError(f"output file '{output_path}': expected {', '.join(SUFFIXES)}")
    from tqdm import tqdm

    names = [i.name for i in session.inputs()]
    with open_events(input_path, names, tree) as events:
        n_events = len(events)
        if n_events == 0:
            raise InputError(f"input file '{input_path}' holds no events")
        with (tqdm(total=n_events, unit="ev", disable=not progress, desc=Path(input_path).name) as bar,
              _outputs(output_path, n_events) as sink):
            for start, event_ids, batch in events.batches(batch_size):
                stop = start + len(next(iter(batch.values())))
                out = sink.slots(start, stop)
                if out is None:
                    out = session.run(batch)
                else:
                    session.run(batch, out=out)
                sink.filled(start, stop, out, event_ids)
                bar.update(stop - start)
    return n_events


# -- many files on Dask ---------------------------------------------------------------------------------
# One Session per worker process, reused by every task that process runs (opening a model costs far more
# than one file's batches); keyed by model and options.
_SESSIONS: dict[tuple, object] = {}


def _worker_session(model: str, backend: str | None, threads: int):
    key = (model, backend, threads)
    if key not in _SESSIONS:
        import juno_bridge as jb

        _SESSIONS[key] = jb.Session(model, backend=backend, intra_op_threads=threads)
    return _SESSIONS[key]


def warm_up(model: str, backend: str | None = None, threads: int = 1) -> None:
    """Opens this worker's Session ahead of the first task (``client.run(warm_up, ...)`` on every worker)."""
    _worker_session(model, backend, threads)


def process_file(model: str, backend: str | None, threads: int, input_path: str, output_path: str,
                 batch_size: int, tree: str | None = None) -> tuple[str, int]:
    """One Dask task: the same run_file the serial path uses, so the results are identical."""
    session = _worker_session(model, backend, threads)
    return input_path, run_file(session, input_path, output_path, batch_size=batch_size, progress=False,
                                tree=tree)


@dataclass
class RunReport:
    done: dict[str, int] = field(default_factory=dict)      # input -> events
    skipped: list[str] = field(default_factory=list)         # outputs already there (an earlier run)
    failed: dict[str, str] = field(default_factory=dict)     # input -> error, after the retries

    def summary(self) -> str:
        lines = [f"{len(self.done)} file(s) done ({sum(self.done.values())} events), {len(self.skipped)} skipped "
                 f"(already done), {len(self.failed)} failed"]
        lines += [f"  failed: {path}: {error}" for path, error in self.failed.items()]
        return "\n".join(lines)


def output_paths(inputs: list[str], output_dir: str | os.PathLike) -> dict[str, Path]:
    """Each input's output: the same file name in ``output_dir``."""
    out = {str(p): Path(output_dir) / Path(p).name for p in inputs}
    names = [p.name for p in out.values()]
    if len(set(names)) != len(names):
        raise InvalidArgumentError("input files share a file name, so their outputs would collide in "
                                   f"'{output_dir}': {sorted(n for n in names if names.count(n) > 1)}")
    return out


def run_files(model: str, inputs: list[str], output_dir: str | os.PathLike, workers: int = 2,
              scheduler: str | None = None, batch_size: int = 256, backend: str | None = None, threads: int = 1,
              retries: int = 2, progress: bool = True, tree: str | None = None) -> RunReport:
    """Runs ``model`` over many event files on Dask: a LocalCluster of ``workers`` processes (one thread
    each), or the cluster behind ``scheduler``. Finished outputs are skipped, so a rerun resumes; a
    failing file is retried ``retries`` times and then reported, while the other files complete. ``tree``
    names the input TTree of ROOT files. A worker
    that dies mid-task loses nothing: its task runs again elsewhere and the output appears atomically."""
    if workers < 1:
        raise InvalidArgumentError(f"--workers must be >= 1, got {workers}")
    if batch_size < 1:
        raise InvalidArgumentError(f"batch size must be >= 1, got {batch_size}")
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError as err:
        raise InvalidArgumentError("several files need Dask: pip install 'juno-bridge[dask]'") from err
    from tqdm import tqdm

    missing = [p for p in inputs if not Path(p).exists()]
    if missing:
        raise InvalidArgumentError(f"input file(s) do not exist: {', '.join(missing)}")
    try:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunError(f"cannot create output folder '{output_dir}': {reason(err)}") from err
    _check_writable(output_dir)
    sweep_temporaries(output_dir)
    report = RunReport()
    todo = {}
    for inp, out in output_paths(inputs, output_dir).items():
        # Resume trusts only a complete output; a damaged one is done again (and replaced atomically).
        (report.skipped.append(str(out)) if complete_output(out) else todo.__setitem__(inp, out))
    if not todo:
        return report
    cluster = None if scheduler else LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                  dashboard_address=None)
    try:
        with Client(scheduler or cluster) as client:
            futures = [client.submit(process_file, model, backend, threads, inp, str(out), batch_size, tree,
                                     retries=retries, pure=False, key=f"juno-bridge-run-{Path(inp).name}-{os.urandom(4).hex()}")
                       for inp, out in todo.items()]
            paths = {f.key: inp for f, inp in zip(futures, todo)}
            with tqdm(total=len(futures), unit="file", disable=not progress, desc="juno-bridge run") as bar:
                for future in as_completed(futures):
                    if future.status == "finished":
                        inp, n = future.result()
                        report.done[inp] = n
                    else:
                        error = future.exception()
                        report.failed[paths[future.key]] = f"{type(error).__name__}: {error}"
                    bar.update(1)
    finally:
        if cluster is not None:
            cluster.close()
    return report
