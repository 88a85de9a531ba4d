"""`juno-bridge run`: inference over an event file, in batches, with a progress bar; over many files on Dask.

Input: an ``.npz`` or HDF5 (``.h5``/``.hdf5``) file holding one array per model input, named after the
input, with events along the first axis; or, for a model of one input, a sparse-hits HDF5 file
(``juno-bridge toymc --out``, layout in ``juno_bridge.hits_file``), scattered to dense events per batch; or
a ROOT file (``.root``): a TTree or RNTuple of one branch per model input, or of sparse hits, read batch by
batch
(layouts and tree names in ``juno_bridge.root_file``). Output, by the output file's suffix whatever the
input's: ``.npz`` or HDF5 with ``event_id`` (int64: the input's ids, else each event's index) and one
array per model output, or ``.root``, a TTree (``--root-format rntuple``: an RNTuple) ``outputs`` of the
same, extended batch by batch. Batches of .npz and HDF5 files are views
into the loaded arrays and outputs are written in place into slices of the output arrays (for ROOT, into
one reused batch buffer), so nothing is copied between the file and the model.
"""
from __future__ import annotations

import json
import os
import stat
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from juno_bridge import hits_file, root_file
from juno_bridge.atomic_file import check_folder, check_writable, reason, replacing, sweep_temporaries
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


RECORD = "juno_bridge_input"  # an output's record of its input: HDF5 attribute, ROOT TObjString, npz comment
_NPZ_RECORD = b"juno-bridge-input "  # the npz archive's comment starts so, then the record's JSON
_CHUNK_BYTES = 16 << 20  # reading an output back, at most this much at a time


def input_record(path: str | os.PathLike) -> dict:
    """What an output records of its input (taken before the input is read): where it is, its size and
    modification time; ``run_file`` adds the number of events."""
    info = os.stat(path)
    return {"input": os.path.abspath(path), "size": info.st_size, "mtime_ns": info.st_mtime_ns}


def write_outputs(path: str | os.PathLike, arrays: dict[str, np.ndarray], record: dict | None = None,
                  allow_symlinked_folder: bool = False) -> None:
    """Writes an .npz or HDF5 output file atomically and durably (``juno_bridge.atomic_file``): ``path``
    either does not exist or is complete, even after a crash. Every write and the close are checked and the
    file is read back and compared before it takes its name. ``record`` (JSON-able) is kept in the file: an
    HDF5 attribute ``juno_bridge_input`` of the root group, or the .npz archive's comment. A full disk, a
    read-only or unwritable folder is a RunError naming the file; nothing is left behind."""
    path = Path(path)
    if path.suffix not in (*HDF5_SUFFIXES, ".npz"):
        raise InvalidArgumentError(f"output file '{path}': expected .npz, .h5 or .hdf5")
    text = json.dumps(record) if record is not None else None
    with replacing(path, lambda tmp: _verify_arrays(path, tmp, arrays, text), allow_symlinked_folder) as tmp:
        if path.suffix in HDF5_SUFFIXES:
            # h5py never sees a failed write (it cannot close a file after one): the latch keeps the error
            with h5py_module().File(tmp.latched(), "w") as f:
                if text is not None:
                    f.attrs[RECORD] = text
                for name, array in arrays.items():
                    f.create_dataset(name, data=array)
        else:
            with tmp.file() as f:
                _write_npz(f, arrays, None if text is None else _NPZ_RECORD + text.encode())


def _write_npz(f, arrays: dict[str, np.ndarray], comment: bytes | None) -> None:
    """``np.savez``'s archive (stored members ``<name>.npy``), with a comment."""
    import zipfile

    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
        if comment is not None:
            archive.comment = comment


def _verify_arrays(path: Path, tmp, arrays: dict[str, np.ndarray], text: str | None) -> None:
    """The written file, read back from the disk's side of the temporary, holds exactly ``arrays`` and the
    record: a write the system accepted but lost (or a writer that swallowed an error) is found here."""
    def lost(what: str) -> RunError:
        return RunError(f"cannot write output file '{path}': reading it back found {what}")

    with tmp.reader() as f:
        if path.suffix in HDF5_SUFFIXES:
            try:
                g = h5py_module().File(f, "r")
            except Exception as err:
                raise lost(f"no readable HDF5 file ({_one_line(err)})") from err
            with g:
                if sorted(g.keys()) != sorted(arrays) or (text is not None and g.attrs.get(RECORD) != text):
                    raise lost(f"datasets {sorted(g.keys())} and record {g.attrs.get(RECORD)!r}")
                for name, array in arrays.items():
                    if not _same_rows(array, g[name].shape, g[name].dtype, g[name].__getitem__):
                        raise lost(f"different contents in '{name}'")
            return
        import zipfile

        try:
            archive = zipfile.ZipFile(f)
        except Exception as err:
            raise lost(f"no readable .npz archive ({_one_line(err)})") from err
        with archive:
            names = [m[:-len(".npy")] for m in archive.namelist()]
            expected_comment = b"" if text is None else _NPZ_RECORD + text.encode()
            if sorted(names) != sorted(arrays) or archive.comment != expected_comment:
                raise lost(f"arrays {sorted(names)} and comment {archive.comment[:200]!r}")
            for name, array in arrays.items():
                try:
                    with archive.open(f"{name}.npy") as member:
                        if not _same_npy(member, np.asanyarray(array)):
                            raise lost(f"different contents in '{name}'")
                except zipfile.BadZipFile as err:
                    raise lost(f"a damaged member '{name}' ({_one_line(err)})") from err


def _same_rows(array: np.ndarray, shape, dtype, read) -> bool:
    """Whether what ``read(index)`` reads back equals ``array``, compared a bounded slice of rows at a time."""
    array = np.asanyarray(array)
    if tuple(shape) != array.shape or np.dtype(dtype) != array.dtype:
        return False
    if array.ndim == 0:
        return _same_bytes(read(()), array)
    step = max(1, _CHUNK_BYTES // max(1, array[:1].nbytes))
    return all(_same_bytes(read(slice(a, a + step)), array[a:a + step]) for a in range(0, len(array), step))


def _same_bytes(got, want: np.ndarray) -> bool:
    """Bit for bit (a NaN is its bits, -0.0 is not 0.0): what was written is what is read."""
    got, want = np.ascontiguousarray(got), np.ascontiguousarray(want)
    return got.dtype == want.dtype and np.array_equal(got.reshape(-1).view(np.uint8), want.reshape(-1).view(np.uint8))


def _same_npy(member, array: np.ndarray) -> bool:
    """Whether an .npy member holds ``array``: its header, then its bytes, compared a bounded part at a time."""
    version = np.lib.format.read_magic(member)
    shape, fortran, dtype = (np.lib.format.read_array_header_1_0 if version[0] == 1 else
                             np.lib.format.read_array_header_2_0)(member)
    if tuple(shape) != array.shape or dtype != array.dtype:
        return False
    data = np.ascontiguousarray(array.T if fortran else array).reshape(-1).view(np.uint8)
    for start in range(0, len(data), _CHUNK_BYTES):
        if not np.array_equal(np.frombuffer(member.read(_CHUNK_BYTES), np.uint8), data[start:start + _CHUNK_BYTES]):
            return False
    return member.read(1) == b""


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def read_output(path: str | os.PathLike) -> tuple[dict | None, set]:
    """An output file's record of its input (None if it has none) and the event counts of its arrays
    (read from the headers and metadata, not the data). Raises whatever a damaged file raises."""
    path = Path(path)
    if path.suffix == root_file.SUFFIX:
        return root_file.read_output(path, RECORD)
    if path.suffix in HDF5_SUFFIXES:
        with h5py_module().File(path, "r") as f:
            text = f.attrs.get(RECORD)
            counts = {f[n].shape[0] if f[n].shape else None for n in f.keys()}
    else:
        import zipfile

        with zipfile.ZipFile(path) as archive:
            comment = archive.comment
        text = comment[len(_NPZ_RECORD):].decode() if comment.startswith(_NPZ_RECORD) else None
        counts = {shape[0] if shape else None for shape in _npz_shapes(path)}
    return (json.loads(text) if isinstance(text, str) else None), counts


def complete_output(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a whole output file: it opens, holds at least one array and all its arrays have the
    same event count (read from the headers, not the data; for ROOT, the ``outputs`` tree's metadata and the
    file's length its header gives). A truncated or foreign file is not. Whether it is the output of a given
    input as it is now: ``stale_output``."""
    try:
        _, counts = read_output(path)
    except Exception:  # whatever a damaged file raises: numpy, zipfile, h5py, uproot
        return False
    return len(counts) == 1 and None not in counts


def stale_output(output: str | os.PathLike, input_path: str | os.PathLike,
                 root_format: str | None = None) -> str | None:
    """None when ``output`` is a whole output of ``input_path`` as that is now, one a resumed run may keep;
    else why it must be made again. Trusted only: a regular file (not a symbolic link) whose record names this
    input, with its size and modification time, and whose arrays all hold the recorded number of events; a
    ROOT output's tree of the kind ``root_format`` asks for (default: a TTree)."""
    output = Path(output)
    try:
        info = output.lstat()
    except FileNotFoundError:
        return "it does not exist"
    if stat.S_ISLNK(info.st_mode):
        return f"it is a symbolic link (to '{os.readlink(output)}')"
    if not stat.S_ISREG(info.st_mode):
        return "it is not a regular file"
    try:
        record, counts = read_output(output)
    except Exception as err:  # whatever a damaged file raises
        return f"it cannot be read ({_one_line(err)[:300]})"
    if not isinstance(record, dict) or not {"input", "size", "mtime_ns", "events"} <= record.keys():
        return "it holds no record of its input (written by an older juno-bridge or another program)"
    now = input_record(input_path)
    if record["input"] != now["input"]:
        return f"it was made from '{record['input']}'"
    if (record["size"], record["mtime_ns"]) != (now["size"], now["mtime_ns"]):
        return (f"its input changed since (then {record['size']} bytes modified at {record['mtime_ns']} ns, now "
                f"{now['size']} bytes at {now['mtime_ns']} ns)")
    if counts != {record["events"]}:
        return f"its arrays hold {sorted(counts, key=str)} events, its input {record['events']}"
    if output.suffix == root_file.SUFFIX:
        wanted, found = root_format or root_file.TTREE, root_file.output_format(output)
        if found != wanted:
            return f"it is a {found}, the run writes a {wanted}"
    return None


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
    """.npz/HDF5 outputs: whole arrays in memory, each batch written in place into its slice; ``event_id``
    beside them, as in a ROOT output."""

    def __init__(self, n_events: int):
        self.n_events = n_events
        self.arrays: dict[str, np.ndarray] = {}
        self.event_ids = np.arange(n_events, dtype=np.int64)  # an input without ids: the event's index

    def slots(self, start: int, stop: int) -> dict | None:
        return {n: a[start:stop] for n, a in self.arrays.items()} or None

    def filled(self, start: int, stop: int, outputs: dict, event_ids) -> None:
        if not self.arrays:  # the first batch tells the per-event output shapes
            if root_file.EVENT_ID in outputs:
                raise InputError(f"the model has an output named '{root_file.EVENT_ID}', which the output file "
                                 "keeps for the events' ids")
            self.arrays = {n: np.empty((self.n_events, *a.shape[1:]), a.dtype) for n, a in outputs.items()}
            for n, a in outputs.items():
                self.arrays[n][start:stop] = a
        if event_ids is not None:
            self.event_ids[start:stop] = event_ids

    def written(self) -> dict[str, np.ndarray]:
        return {root_file.EVENT_ID: self.event_ids, **self.arrays}


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
def _outputs(path: Path, n_events: int, record: dict, allow_symlinked_folder: bool, root_format: str):
    """Where a run's outputs go, by the output file's suffix; the file appears (atomically, read back and
    checked) only when the block ends without an error."""
    if path.suffix == root_file.SUFFIX:
        trees = []

        def verify(tmp) -> None:
            if (found := trees[0].verify(tmp.reader())) is not None:
                raise RunError(f"cannot write output file '{path}': reading it back found {found}")

        with replacing(path, verify, allow_symlinked_folder) as tmp:
            with root_file.OutputTree(tmp.file(), (RECORD, json.dumps(record)), root_format) as tree:
                trees.append(tree)
                yield _TreeBatches(tree)
            root_file.trim(tmp)
    else:
        whole = _WholeArrays(n_events)
        yield whole
        write_outputs(path, whole.written(), record, allow_symlinked_folder)


def _root_format(output_path: Path, root_format: str | None) -> str:
    """The kind of tree a ROOT output is written as (a TTree unless asked); asked for another output, an
    error."""
    if root_format is None:
        return root_file.TTREE
    root_file.check_root_format(root_format)
    if output_path.suffix != root_file.SUFFIX:
        raise InvalidArgumentError(f"--root-format {root_format} is for .root outputs; the output "
                                   f"'{output_path}' is {output_path.suffix or 'without a suffix'}")
    return root_format


def run_file(session, input_path, output_path, batch_size: int = 256, progress: bool = True,
             tree: str | None = None, allow_symlinked_output: bool = False, root_format: str | None = None) -> int:
    """Runs ``session`` over every event of ``input_path``; returns the number of events. ``tree`` names
    the input TTree or RNTuple of a ROOT file; ``root_format`` (``ttree``, the default, or ``rntuple``) the
    kind of tree a ROOT output is. The output records its input (``input_record`` and the number of events)
    for a resumed run (``stale_output``). An output folder that is a symbolic link is refused unless
    ``allow_symlinked_output``."""
    if batch_size < 1:
        raise InvalidArgumentError(f"batch size must be >= 1, got {batch_size}")
    output_path = Path(output_path)
    if output_path.suffix not in SUFFIXES:
        raise InvalidArgumentError(f"output file '{output_path}': expected {', '.join(SUFFIXES)}")
    root_format = _root_format(output_path, root_format)
    check_folder(output_path.parent, allow_symlinked_output)
    check_writable(output_path)  # before the first event, not after the last
    from tqdm import tqdm

    names = [i.name for i in session.inputs()]
    if not Path(input_path).exists():
        raise InvalidArgumentError(f"input file '{input_path}' does not exist")
    record = input_record(input_path)  # before reading: a change while it is read makes the output stale
    sweep_temporaries(output_path.parent, output_path.name)  # what an earlier, killed writer of it left
    with open_events(input_path, names, tree) as events:
        n_events = len(events)
        if n_events == 0:
            raise InputError(f"input file '{input_path}' holds no events")
        record["events"] = n_events
        with (tqdm(total=n_events, unit="ev", disable=not progress, desc=Path(input_path).name) as bar,
              _outputs(output_path, n_events, record, allow_symlinked_output, root_format) as sink):
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
                 batch_size: int, tree: str | None = None, allow_symlinked_output: bool = False,
                 root_format: str | None = None) -> tuple[str, int]:
    """One Dask task: the same run_file the serial path uses, so the results are identical."""
    session = _worker_session(model, backend, threads)
    return input_path, run_file(session, input_path, output_path, batch_size=batch_size, progress=False,
                                tree=tree, allow_symlinked_output=allow_symlinked_output, root_format=root_format)


@dataclass
class RunReport:
    done: dict[str, int] = field(default_factory=dict)      # input -> events
    skipped: list[str] = field(default_factory=list)         # outputs already there (an earlier run)
    failed: dict[str, str] = field(default_factory=dict)     # input -> error (one line), after the retries
    redone: dict[str, str] = field(default_factory=dict)     # output there but not trusted -> why
    swept: list[str] = field(default_factory=list)           # temporaries of dead writers removed

    def summary(self) -> str:
        """One line per file that was redone or failed, then the counts."""
        lines = [f"redone: {path}: {why}" for path, why in self.redone.items()]
        lines += [f"failed: {path}: {error}" for path, error in self.failed.items()]
        lines.append(f"{len(self.done)} file(s) done ({sum(self.done.values())} events), {len(self.skipped)} "
                     f"skipped (already done), {len(self.failed)} failed")
        return "\n".join(lines)


def output_paths(inputs: list[str], output_dir: str | os.PathLike) -> dict[str, Path]:
    """Each input's output: the same file name in ``output_dir``."""
    out = {str(p): Path(output_dir) / Path(p).name for p in inputs}
    names = [p.name for p in out.values()]
    if len(set(names)) != len(names):
        raise InvalidArgumentError("input files share a file name, so their outputs would collide in "
                                   f"'{output_dir}': {sorted(n for n in names if names.count(n) > 1)}")
    return out


def _task_error(error: BaseException) -> str:
    """A failed task in one line: a RunError's message says it all; anything else gets its type."""
    text = " ".join(str(error).split())
    return text if isinstance(error, RunError) else f"{type(error).__name__}: {text}"


def run_files(model: str, inputs: list[str], output_dir: str | os.PathLike, workers: int = 2,
              scheduler: str | None = None, batch_size: int = 256, backend: str | None = None, threads: int = 1,
              retries: int = 2, progress: bool = True, tree: str | None = None,
              allow_symlinked_output: bool = False, root_format: str | None = None) -> RunReport:
    """Runs ``model`` over many event files on Dask: a LocalCluster of ``workers`` processes (one thread
    each), or the cluster behind ``scheduler``. Outputs that match their inputs (``stale_output``) are
    skipped, so a rerun resumes; any other output there is made again (``RunReport.redone`` says why). A
    failing file is retried ``retries`` times and then reported, while the other files complete. ``tree``
    names the input TTree or RNTuple of ROOT files; ``root_format`` (``ttree``, the default, or ``rntuple``)
    the kind of tree their outputs are (an output of the other kind is made again). A worker that dies
    mid-task loses nothing: its task runs again elsewhere, the output appears atomically, and the temporaries
    of dead writers are swept at the start and the end. An output folder that is a symbolic link is refused
    unless ``allow_symlinked_output``."""
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
    check_folder(Path(output_dir), allow_symlinked_output)
    try:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunError(f"cannot create output folder '{output_dir}': {reason(err)}") from err
    _check_writable(output_dir)
    outputs = output_paths(inputs, output_dir)
    if root_format is not None:
        root_file.check_root_format(root_format)
        if not any(out.suffix == root_file.SUFFIX for out in outputs.values()):
            raise InvalidArgumentError(f"--root-format {root_format} is for .root outputs; the outputs keep their "
                                       "inputs' names and none of these inputs is a .root file")
    report = RunReport(swept=sweep_temporaries(output_dir))
    todo = {}
    for inp, out in outputs.items():
        why = stale_output(out, inp, root_format if out.suffix == root_file.SUFFIX else None)
        if why is None:
            report.skipped.append(str(out))
            continue
        if os.path.lexists(out):  # damaged, foreign, a link, or of another input: made again, atomically
            report.redone[str(out)] = why
        todo[inp] = out
    if not todo:
        return report
    import logging

    # A failed task is one line of the summary; the workers' own logs of it (tracebacks) stay quiet.
    cluster = None if scheduler else LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                  dashboard_address=None, silence_logs=logging.CRITICAL)
    try:
        with Client(scheduler or cluster) as client:
            # Absolute paths: a worker's working folder is not ours, and the output records where its input is.
            futures = [client.submit(process_file, model, backend, threads, os.path.abspath(inp),
                                     os.path.abspath(out), batch_size, tree, allow_symlinked_output,
                                     root_format if out.suffix == root_file.SUFFIX else None, retries=retries,
                                     pure=False, key=f"juno-bridge-run-{Path(inp).name}-{os.urandom(4).hex()}")
                       for inp, out in todo.items()]
            paths = {f.key: inp for f, inp in zip(futures, todo)}
            with tqdm(total=len(futures), unit="file", disable=not progress, desc="juno-bridge run") as bar:
                for future in as_completed(futures):
                    if future.status == "finished":
                        report.done[paths[future.key]] = future.result()[1]
                    else:
                        report.failed[paths[future.key]] = _task_error(future.exception())
                    bar.update(1)
    finally:
        if cluster is not None:
            cluster.close()
        # A worker killed mid-write left its temporary; its task was done again by another.
        report.swept += sweep_temporaries(output_dir)
    return report
