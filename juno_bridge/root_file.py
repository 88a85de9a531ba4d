"""Event files in ROOT: TTrees and RNTuples read and written through uproot, streamed. ``juno-bridge run``
reads events from either and writes its outputs as one (a TTree by default, ``--root-format rntuple`` for an
RNTuple); ``juno-bridge toymc --out events.root`` writes toy events the same way.

The input tree: the TTree or RNTuple named by ``--tree``; without it, ``events`` when the file has one of
that name, else the file's only one. Two layouts, told apart by the tree's branches (an RNTuple's fields:
the same names and types, one entry per event):

dense: one branch per model input, named after the input, holding a fixed-size array of the input's
  type per event: ``pmt`` float32[2][17612] for a model taking ``pmt`` [B, 2, 17612].

sparse hits, for a model of one input (the ROOT twin of ``juno_bridge.hits_file``):

=============  ====================  ========================================================
``pmt_id``     int32[nhits]          large-PMT id of each hit, 0..17611 (int64 also read)
``npe``        float32[nhits]        photoelectrons of the hit
``time``       float32[nhits]        hit time, ns after the event
``nhits``      int32                 the counter the three share (uproot's; any name is read)
``event_id``   int64                 optional (below)
``vertex``     float32[3]            truth, optional (``toymc`` writes it): x, y, z in m
``energy``     float32               truth, optional: MeV
=============  ====================  ========================================================

  Each batch of events is scattered, by the core's scatter as for HDF5 hits files, into the dense
  ``[2, 17612]`` float32 events the model takes: channel 0 the nPE summed per PMT, channel 1 the first-hit
  time (0 for dark PMTs).

Either layout may carry ``event_id`` (an integer per event). The output tree ``outputs`` holds
``event_id`` int64 (the input's, else the event's entry number in the input tree) and one branch per model
output with its per-event shape (e.g. ``vertex`` float32[3], ``energy`` float32).

Streaming: the input is read one batch of entries at a time (uproot's ``iterate`` with ``step_size`` the
batch size; an RNTuple's cluster at most besides) and the output tree is extended batch by batch, so
neither file has to fit in memory.
"""
from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

import numpy as np

from juno_bridge.errors import InputError, InvalidArgumentError

SUFFIX = ".root"
DEFAULT_TREE = "events"
OUTPUT_TREE = "outputs"
EVENT_ID = "event_id"
HITS = ("pmt_id", "npe", "time")
HIT_COUNTER = "nhits"
TTREE, RNTUPLE = "ttree", "rntuple"
ROOT_FORMATS = (TTREE, RNTUPLE)  # what ``--root-format`` takes: the kind of tree a ROOT output is written as
_CLASSES = {"TTree": TTREE, "ROOT::RNTuple": RNTUPLE}  # ROOT's class name of each kind
_READ_BACK_BYTES = 64 << 20  # an output read back to be checked, this much at a time
# What a sparse-hits branch must hold per event: a variable-length list of one of these element types.
_HIT_TYPES = {"pmt_id": (np.int32, np.int64), "npe": (np.float32,), "time": (np.float32,)}


def uproot_module():
    """uproot, or an error that says how to get it."""
    try:
        import uproot
    except ImportError as err:  # an optional extra
        raise InvalidArgumentError("ROOT files need uproot: pip install 'juno-bridge[root]'") from err
    return uproot


def _open(path: Path):
    """The file open for reading; a damaged or truncated one is an InputError (uproot reads a truncated file's
    first baskets happily: its header's fEND, the length the writer gave it, tells). No cache of arrays: read
    once, in order, a batch is not read again (uproot's default cache keeps every RNTuple page read, up to
    100 MB a file)."""
    try:
        f = uproot_module().open(path, array_cache=None)
        end = f.file.fEND
    except InvalidArgumentError:
        raise
    except Exception as err:  # whatever uproot raises on a file that is not ROOT or is damaged
        raise InputError(f"'{path}' is not a readable ROOT file: {_one_line(err)}") from err
    size = path.stat().st_size
    if size < end:
        f.close()
        raise InputError(f"'{path}' is truncated: its header says {end} bytes, the file has {size}")
    return f


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())  # uproot's messages span lines; ours are one


def _trees(f) -> dict[str, str]:
    """name -> class name of the file's top-level objects (newest cycle only)."""
    return {name.rsplit(";", 1)[0]: cls for name, cls in f.classnames(recursive=False).items()}


def _pick_tree(f, path: Path, tree: str | None):
    objects = _trees(f)
    trees = [name for name, cls in objects.items() if cls in _CLASSES]
    held = ", ".join(f"{n} ({c})" for n, c in objects.items()) or "nothing"
    if tree is None:
        if DEFAULT_TREE in trees or len(trees) == 1:
            tree = DEFAULT_TREE if DEFAULT_TREE in trees else trees[0]
        elif not trees:
            raise InputError(f"'{path}' holds no TTree or RNTuple; it holds {held}")
        else:
            raise InputError(f"'{path}' holds several trees (TTree or RNTuple) and none named '{DEFAULT_TREE}': "
                             f"name one with --tree ({', '.join(trees)})")
    elif tree not in trees:
        raise InputError(f"'{path}' has no TTree or RNTuple '{tree}'; it holds {held}")
    return f[tree]


def check_root_format(root_format: str) -> str:
    if root_format not in ROOT_FORMATS:
        raise InvalidArgumentError(f"ROOT format must be one of {', '.join(ROOT_FORMATS)}, got {root_format!r}")
    return root_format


def _is_rntuple(obj) -> bool:
    return obj.classname == "ROOT::RNTuple"


def _keys(obj) -> list[str]:
    """A tree's top-level branch names, an RNTuple's top-level field names."""
    return list(obj.keys(recursive=False))


def _column(obj, name: str) -> tuple[str, np.dtype | None, str]:
    """What a TTree branch or RNTuple field holds per event: ``("fixed", dtype, text)`` for a fixed-size array
    (``dtype`` with its per-event shape), ``("jagged", dtype, text)`` for a variable-length list of numbers,
    ``("other", None, text)`` for anything else; ``text`` in numpy's words (``float32[2][17612]``,
    ``float64[]``), else ROOT's type name."""
    if _is_rntuple(obj):
        kind, dtype = _form_column(obj[name].to_akform()[0].contents[0])
    else:
        kind, dtype = _interpretation_column(obj[name].interpretation)
    if kind == "other":
        return kind, None, obj[name].typename
    text = f"{dtype.base.name}{''.join(f'[{d}]' for d in dtype.shape)}{'[]' if kind == 'jagged' else ''}"
    return kind, dtype, text


def _interpretation_column(interpretation) -> tuple[str, np.dtype | None]:
    uproot = uproot_module()
    if isinstance(interpretation, uproot.AsDtype):
        return "fixed", interpretation.to_dtype
    if isinstance(interpretation, uproot.AsJagged) and isinstance(interpretation.content, uproot.AsDtype):
        if interpretation.content.to_dtype.shape == ():
            return "jagged", interpretation.content.to_dtype
    return "other", None


def _form_column(form) -> tuple[str, np.dtype | None]:
    """The same from an RNTuple field's awkward form: nested RegularForms over a NumpyForm are a fixed-size
    array, a ListOffsetForm over a plain NumpyForm a variable-length list."""
    import awkward as ak

    shape = []
    while isinstance(form, ak.forms.RegularForm):
        shape.append(form.size)
        form = form.content
    if isinstance(form, ak.forms.NumpyForm) and not form.parameters:
        return "fixed", np.dtype((ak.types.numpytype.primitive_to_dtype(form.primitive),
                                  (*shape, *form.inner_shape)))
    if not shape and isinstance(form, (ak.forms.ListOffsetForm, ak.forms.ListForm)) and not form.parameters:
        content = form.content
        if isinstance(content, ak.forms.NumpyForm) and not content.inner_shape and not content.parameters:
            return "jagged", ak.types.numpytype.primitive_to_dtype(content.primitive)
    return "other", None


def _iterate(obj, names: list[str], step: int, library: str) -> Iterator:
    """uproot's iterate over a TTree's branches or an RNTuple's fields, ``step`` entries at a time."""
    if _is_rntuple(obj):
        return obj.iterate(filter_name=names, step_size=step, library=library)
    return obj.iterate(names, step_size=step, library=library)


def _read(obj, names: list[str], start: int, stop: int) -> dict[str, np.ndarray]:
    """Entries ``start:stop`` of fixed-size branches or fields, as numpy arrays."""
    if _is_rntuple(obj):
        return obj.arrays(filter_name=names, entry_start=start, entry_stop=stop, library="np")
    return obj.arrays(names, entry_start=start, entry_stop=stop, library="np")


class TreeEvents:
    """The events of a TTree or RNTuple as batches of model inputs, read ``batch_size`` entries at a time:
    ``for start, event_ids, inputs in events.batches(256)``. ``inputs`` maps each model input to a
    C-contiguous ``[n, ...]`` array; ``event_ids`` is the tree's ``event_id`` or None."""

    def __init__(self, path: str | os.PathLike, names: list[str], tree: str | None = None):
        self.path = Path(path)
        self._file = _open(self.path)
        try:
            self.tree = _pick_tree(self._file, self.path, tree)
            self.names = list(names)
            self.layout = self._layout()
            self.event_ids = self._event_id_branch()
        except BaseException:
            self._file.close()
            raise

    def _where(self) -> str:
        return f"{'RNTuple' if _is_rntuple(self.tree) else 'tree'} '{self.tree.name}' of '{self.path}'"

    def _word(self) -> str:
        return "field" if _is_rntuple(self.tree) else "branch"

    def _layout(self) -> str:
        branches = _keys(self.tree)
        if all(n in branches for n in self.names):
            for n in self.names:
                kind, _, text = _column(self.tree, n)
                if kind != "fixed":
                    raise InputError(f"{self._word()} '{n}' of {self._where()} holds {text} per event; a model "
                                     "input needs a fixed-size array per event")
            return "dense"
        if all(h in branches for h in HITS):
            if len(self.names) != 1:
                raise InputError(f"{self._where()} holds sparse hits, which feed a model of one input; this model "
                                 f"takes {', '.join(self.names)}")
            for h in HITS:
                kind, dtype, text = _column(self.tree, h)
                if not (kind == "jagged" and dtype.type in _HIT_TYPES[h]):
                    expected = " or ".join(f"{np.dtype(t).name}[]" for t in _HIT_TYPES[h])
                    raise InputError(f"{self._word()} '{h}' of {self._where()} holds {text} per event; sparse hits "
                                     f"need {expected} (a variable-length list per event)")
            return "hits"
        raise InputError(f"{self._where()} matches neither layout: dense needs a {self._word()} per model input "
                         f"({', '.join(self.names)}), sparse hits need {', '.join(HITS)}; it has "
                         f"{'fields' if _is_rntuple(self.tree) else 'branches'} {', '.join(branches) or 'none'}")

    def _event_id_branch(self) -> bool:
        if EVENT_ID not in _keys(self.tree):
            return False
        kind, dtype, text = _column(self.tree, EVENT_ID)
        if not (kind == "fixed" and dtype.kind in "iu" and dtype.shape == ()):
            raise InputError(f"{self._word()} '{EVENT_ID}' of {self._where()} holds {text} per event; expected one "
                             "integer")
        return True

    def __len__(self) -> int:
        return self.tree.num_entries

    def __enter__(self) -> "TreeEvents":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def _chunks(self, branches: list[str], step: int, library: str) -> Iterator[dict]:
        """uproot's iterate, its errors (a damaged basket) turned into an InputError naming the file."""
        chunks = _iterate(self.tree, branches, step, library)
        while True:
            try:
                yield next(chunks)
            except StopIteration:
                return
            except Exception as err:
                raise InputError(f"cannot read {self._where()}: {_one_line(err)}") from err

    def batches(self, batch_size: int) -> Iterator[tuple[int, np.ndarray | None, dict[str, np.ndarray]]]:
        ids = [EVENT_ID] if self.event_ids else []
        start = 0
        if self.layout == "dense":
            for chunk in self._chunks([*self.names, *ids], batch_size, "np"):
                n = len(chunk[self.names[0]])
                yield start, chunk.get(EVENT_ID), {name: np.ascontiguousarray(chunk[name]) for name in self.names}
                start += n
            return
        from juno_bridge import hits_file

        dense = None
        for chunk in self._chunks([*HITS, *ids], batch_size, "ak"):
            offsets, hits = self._csr(chunk, start)
            n = len(offsets) - 1
            if dense is None:  # one buffer, reused batch after batch
                dense = np.empty((n, 2, hits_file.N_PMT), np.float32)
            try:
                batch = hits_file.scatter_events(offsets, *hits, out=dense[:n], first=start)
            except InputError as err:
                raise type(err)(f"{self._where()}, {err}") from err
            event_ids = np.asarray(chunk[EVENT_ID]) if self.event_ids else None
            yield start, event_ids, {self.names[0]: batch}
            start += n

    def _csr(self, chunk, start: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """A chunk's hits as offsets and flat pmt_id, npe, time (views of what uproot read)."""
        import awkward as ak

        counts = [np.asarray(ak.num(chunk[h], axis=1)) for h in HITS]
        for h, c in zip(HITS[1:], counts[1:]):
            if not np.array_equal(c, counts[0]):
                entry = start + int(np.flatnonzero(c != counts[0])[0])
                raise InputError(f"{self._where()}, entry {entry}: pmt_id, npe and time must hold as many hits "
                                 f"each; pmt_id holds {counts[0][entry - start]}, {h} {c[entry - start]}")
        offsets = np.zeros(len(counts[0]) + 1, np.int64)
        np.cumsum(counts[0], out=offsets[1:])
        return offsets, [np.ascontiguousarray(ak.to_numpy(ak.flatten(chunk[h], axis=1))) for h in HITS]


class OutputTree:
    """Model outputs as the TTree (or, ``root_format="rntuple"``, the RNTuple) ``outputs`` of a new file (a path
    or an open binary file), extended batch by batch: ``event_id`` and one branch (field) per output, typed
    from the first batch. ``record`` (name, text) is kept beside the tree as a TObjString. Keeps a CRC-32 of
    each branch as written, for ``verify``."""

    def __init__(self, path: str | os.PathLike | BinaryIO, record: tuple[str, str] | None = None,
                 root_format: str = TTREE):
        self.root_format = check_root_format(root_format)
        self._file = uproot_module().recreate(path)
        self._tree = None
        self.record = record
        if record is not None:
            self._file[record[0]] = record[1]
        self.entries = self.entry_bytes = 0
        self.digests: dict[str, int] = {}  # CRC-32 of each branch's bytes, in native order

    def extend(self, event_ids: np.ndarray, outputs: dict[str, np.ndarray]) -> None:
        if EVENT_ID in outputs:
            raise InputError(f"the model has an output named '{EVENT_ID}', which the output tree keeps for the "
                             "events' ids")
        if self._tree is None:
            types = {EVENT_ID: np.dtype(np.int64), **{n: np.dtype((a.dtype, a.shape[1:])) for n, a in outputs.items()}}
            make = self._file.mkrntuple if self.root_format == RNTUPLE else self._file.mktree
            self._tree = make(OUTPUT_TREE, types)
        arrays = {EVENT_ID: np.asarray(event_ids, np.int64), **outputs}
        self._tree.extend(arrays)
        for name, array in arrays.items():
            self.digests[name] = zlib.crc32(_native(array), self.digests.get(name, 0))
        self.entries += len(arrays[EVENT_ID])
        self.entry_bytes = sum(a[:1].nbytes for a in arrays.values())

    def verify(self, written: BinaryIO) -> str | None:
        """None when the file ``written`` (read back, then closed) holds what was extended: as long as its
        header says, the record, every branch with every entry, the same bytes (by CRC-32); else what it
        holds instead."""
        try:
            with uproot_module().open(written) as f:
                size = os.fstat(written.fileno()).st_size
                if size != f.file.fEND:
                    return f"{size} bytes where its header says {f.file.fEND}"
                if self.record is not None and str(f[self.record[0]]) != self.record[1]:
                    return f"the record {str(f[self.record[0]])[:200]!r}"
                kind = _CLASSES.get(_trees(f).get(OUTPUT_TREE))
                if kind != self.root_format:
                    return f"no {self.root_format} '{OUTPUT_TREE}' (its '{OUTPUT_TREE}' is {kind or 'missing'})"
                tree = f[OUTPUT_TREE]
                counts = _entry_counts(tree)
                if counts != {self.entries} or sorted(_keys(tree)) != sorted(self.digests):
                    return f"branches {_keys(tree)} of {sorted(counts)} entries"
                digests = dict.fromkeys(self.digests, 0)
                step = max(1, _READ_BACK_BYTES // max(1, self.entry_bytes))
                for start in range(0, self.entries, step):
                    chunk = _read(tree, list(self.digests), start, min(start + step, self.entries))
                    for name in digests:
                        digests[name] = zlib.crc32(_native(chunk[name]), digests[name])
        except Exception as err:  # whatever uproot raises on a damaged file
            return f"no readable ROOT file ({_one_line(err)[:300]})"
        changed = [name for name in digests if digests[name] != self.digests[name]]
        return f"different contents in {', '.join(changed)}" if changed else None

    def __enter__(self) -> "OutputTree":
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()


def _entry_counts(tree) -> set[int]:
    """The entry counts a tree's metadata gives: the TTree's and each branch's (empty without branches); an
    RNTuple's (its fields have no counts of their own)."""
    if _is_rntuple(tree):
        return {tree.num_entries} if _keys(tree) else set()
    branches = tree.branches
    return {tree.num_entries, *(b.num_entries for b in branches)} if branches else set()


def output_format(path: str | os.PathLike) -> str | None:
    """Which kind of tree (``ttree``, ``rntuple``) an output file's ``outputs`` is; None without one."""
    with _open(Path(path)) as f:
        return _CLASSES.get(_trees(f).get(OUTPUT_TREE))


def trim(tmp) -> None:
    """Cuts a just-written ROOT file (an ``atomic_file`` temporary) to the length its header gives. uproot
    (5.7) rewrites its list of free segments at the file's end on closing and, when the new list is shorter
    than the old, leaves the old one's tail past the end (seen with RNTuples of a few dozen clusters): bytes
    no reader looks at, which would make the file look longer than written."""
    try:
        with uproot_module().open(tmp.reader()) as f:
            end = f.file.fEND
    except Exception:  # whatever uproot raises on a damaged file: reading it back tells what is wrong
        return
    if os.fstat(tmp.fd).st_size > end:
        os.ftruncate(tmp.fd, end)


def _native(array: np.ndarray) -> np.ndarray:
    """The array in native byte order, C-contiguous (ROOT stores big-endian): what a digest is taken of."""
    array = np.asarray(array)
    return np.ascontiguousarray(array, array.dtype.newbyteorder("="))


def read_output(path: str | os.PathLike, record: str) -> tuple[dict | None, set]:
    """An output file's record (the JSON of the TObjString ``record``, None without one) and the entry counts
    of its ``outputs`` tree and branches (from the metadata, not the baskets; empty without branches). A
    damaged file or one truncated short of the length its header gives raises."""
    import json

    path = Path(path)
    with _open(path) as f:
        counts = _entry_counts(f[OUTPUT_TREE])
        text = str(f[record]) if _trees(f).get(record) == "TObjString" else None
    return (json.loads(text) if text is not None else None), counts


def write_hits(path: str | os.PathLike, chunks: Iterable, root_format: str = TTREE) -> int:
    """Writes events in the sparse-hits layout as a TTree (or, ``root_format="rntuple"``, an RNTuple: no
    ``nhits``, an RNTuple keeps its own counts), chunk by chunk (atomically: a temporary, then a rename);
    returns the number of events. Each chunk has CSR hits ``offsets``, ``pmt_id``, ``npe``, ``time`` and
    truth ``vertex`` [n, 3], ``energy`` [n] (``juno_bridge.demo.toymc.Events``); ids count from 0."""
    import awkward as ak

    from juno_bridge.atomic_file import replacing

    from juno_bridge.errors import RunError

    uproot = uproot_module()
    check_root_format(root_format)
    n_events = 0

    def verify(tmp) -> None:  # read back: as long as its header says, every entry there, the kind asked for
        try:
            with uproot.open(tmp.reader()) as f:
                whole = (f.file.fEND == os.fstat(tmp.fd).st_size and
                         _CLASSES.get(_trees(f).get(DEFAULT_TREE)) == root_format and
                         _entry_counts(f[DEFAULT_TREE]) == {n_events})
        except Exception as err:  # whatever uproot raises on a damaged file
            raise RunError(f"cannot write event file '{path}': reading it back failed: {_one_line(err)}") from err
        if not whole:
            raise RunError(f"cannot write event file '{path}': reading it back found a truncated tree")

    # the folder as given, a link or not (as before): the caller named it (toymc --out)
    with replacing(path, verify, allow_symlinked_folder=True) as tmp:
        with uproot.recreate(tmp.file()) as f:
            types = {EVENT_ID: np.int64, **{h: f"var * {np.dtype(_HIT_TYPES[h][0]).name}" for h in HITS},
                     "vertex": np.dtype((np.float32, (3,))), "energy": np.float32}
            if root_format == RNTUPLE:
                tree = f.mkrntuple(DEFAULT_TREE, types)
            else:
                tree = f.mktree(DEFAULT_TREE, types, counter_name=lambda counted: HIT_COUNTER)
            for chunk in chunks:
                counts = np.diff(chunk.offsets)
                tree.extend({EVENT_ID: np.arange(n_events, n_events + len(counts), dtype=np.int64),
                             **{h: ak.unflatten(np.asarray(getattr(chunk, h), _HIT_TYPES[h][0]), counts) for h in HITS},
                             "vertex": np.asarray(chunk.vertex, np.float32).reshape(-1, 3),
                             "energy": np.asarray(chunk.energy, np.float32)})
                n_events += len(counts)
        trim(tmp)
    return n_events
