"""Event files of sparse PMT hits (HDF5): written by ``juno-bridge toymc --out``, read by the SNiPER
``HitsReaderAlg`` (through the HDF5 C library) and by ``juno-bridge run``.

Layout, version 1: one file of N events holding H hits in all, stored by event (CSR):

=============  ===============  ============================================================
``offsets``    int64 [N + 1]    event i's hits are rows offsets[i] .. offsets[i+1]-1; offsets[0] = 0,
                                offsets[N] = H
``pmt_id``     int32 [H]        large-PMT id, 0..17611 (several hits per PMT possible)
``npe``        float32 [H]      photoelectrons of the hit
``time``       float32 [H]      hit time, ns after the event
``vertex``     float32 [N, 3]   truth, optional: x, y, z in m
``energy``     float32 [N]      truth, optional: MeV
=============  ===============  ============================================================

Attributes of the root group: ``format = "juno-bridge-hits"``, ``version = 1``, ``n_pmt = 17612``.
A model reads an event as the dense ``[2, 17612]`` float32 the core's scatter makes: channel 0 the nPE
summed per PMT, channel 1 the first-hit time (0 for dark PMTs).

The same hits as a ROOT TTree (jagged ``pmt_id``, ``npe``, ``time`` per event): ``juno_bridge.root_file``.
"""
from __future__ import annotations

import os

import numpy as np

from juno_bridge._hits import NUM_LPMT
from juno_bridge.errors import InputError, InvalidArgumentError

FORMAT = "juno-bridge-hits"
VERSION = 1
N_PMT = NUM_LPMT
_HITS = ("offsets", "pmt_id", "npe", "time")


def h5py_module():
    """h5py, or an error that says how to get it (the one place: the file runner uses it too)."""
    try:
        import h5py
    except ImportError as err:  # an optional extra
        raise InvalidArgumentError("HDF5 files need h5py: pip install 'juno-bridge[hdf5]'") from err
    return h5py


def write(path: str | os.PathLike, offsets, pmt_id, npe, time, vertex=None, energy=None) -> None:
    """Writes one hits file atomically (``juno_bridge.atomic_file``: a fresh temporary, checked, read back,
    then renamed)."""
    offsets = np.asarray(offsets, np.int64)
    arrays = {"offsets": offsets, "pmt_id": np.asarray(pmt_id, np.int32), "npe": np.asarray(npe, np.float32),
              "time": np.asarray(time, np.float32)}
    if offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0 or np.any(np.diff(offsets) < 0):
        raise InputError("offsets must be [N + 1] int64, rising from 0")
    if not (len(arrays["pmt_id"]) == len(arrays["npe"]) == len(arrays["time"]) == offsets[-1]):
        raise InputError(f"pmt_id, npe and time must hold offsets[-1] = {offsets[-1]} hits")
    if (vertex is None) != (energy is None):
        raise InputError("truth needs both vertex [N, 3] and energy [N], or neither")
    if vertex is not None:
        arrays["vertex"] = np.asarray(vertex, np.float32).reshape(len(offsets) - 1, 3)
        arrays["energy"] = np.asarray(energy, np.float32).reshape(len(offsets) - 1)
    from juno_bridge.atomic_file import replacing
    from juno_bridge.errors import RunError

    def verify(tmp) -> None:  # read back: a write the system accepted but lost is found before the rename
        try:
            with h5py_module().File(tmp.reader(), "r") as f:
                same = (is_hits_file(f) and sorted(f.keys()) == sorted(arrays) and
                        all(np.array_equal(f[n][...], a) for n, a in arrays.items()))
        except Exception as err:  # whatever h5py raises on a damaged file
            raise RunError(f"cannot write hits file '{path}': reading it back failed: {err}") from err
        if not same:
            raise RunError(f"cannot write hits file '{path}': reading it back found other contents")

    # the folder as given, a link or not (as before): the caller named it (toymc --out)
    with replacing(path, verify, allow_symlinked_folder=True) as tmp, h5py_module().File(tmp.latched(), "w") as f:
        f.attrs.update(format=FORMAT, version=VERSION, n_pmt=N_PMT)
        for name, array in arrays.items():
            f.create_dataset(name, data=array)


def is_hits_file(f) -> bool:
    """Whether an open h5py file holds sparse hits in this layout."""
    return f.attrs.get("format") == FORMAT or all(name in f for name in _HITS)


class DenseEvents:
    """The events of a hits file as a read-only sequence of dense ``[2, 17612]`` float32 events: ``len()``
    and slicing (``events[a:b]`` scatters those events into a new ``[b - a, 2, 17612]`` batch), so a
    file runner takes batches from it as from an array, without the whole file ever being dense."""

    def __init__(self, path: str | os.PathLike):
        with h5py_module().File(path, "r") as f:
            if not is_hits_file(f):
                raise InputError(f"'{path}' is not a juno-bridge hits file (datasets {', '.join(_HITS)})")
            self.offsets, self.pmt_id, self.npe, self.time = (np.asarray(f[n][...]) for n in _HITS)
        self.path = str(path)
        self.shape = (len(self.offsets) - 1, 2, N_PMT)
        self.dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: slice) -> np.ndarray:
        if not isinstance(index, slice):
            raise TypeError("hits-file events are taken by slices: events[a:b]")
        start, stop, step = index.indices(len(self))
        if step != 1:
            raise TypeError("hits-file events are taken by contiguous slices")
        out = np.empty((max(stop - start, 0), 2, N_PMT), np.float32)
        return scatter_events(self.offsets[start:max(stop, start) + 1], self.pmt_id, self.npe, self.time, out,
                              first=start)


def scatter_events(offsets: np.ndarray, pmt_id: np.ndarray, npe: np.ndarray, time: np.ndarray,
                   out: np.ndarray, first: int = 0) -> np.ndarray:
    """Events stored by event (event k's hits are rows offsets[k] .. offsets[k+1]-1 of the hit arrays)
    scattered into the dense events ``out[k]`` by the core's scatter; returns ``out``. A PMT id out of range
    is an InputError naming the event, numbered from ``first``."""
    import juno_bridge as jb

    for k in range(len(offsets) - 1):
        s = slice(offsets[k], offsets[k + 1])
        try:
            jb.scatter_hits(pmt_id[s], npe[s], time[s], out=out[k])
        except InputError as err:
            raise type(err)(f"event {first + k}: {err}") from err
    return out
