"""`juno-bridge run` reads RNTuples (uproot 5.7 writes one for ``file["events"] = {...}``) in both layouts a
TTree may hold, streamed as TTrees are, and writes its ROOT outputs as a TTree unless ``--root-format rntuple``
asks for an RNTuple. Every output here is compared bit for bit with the TTree path's. And the .npz and HDF5
outputs carry ``event_id`` as the ROOT output does."""
from __future__ import annotations

import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import juno_bridge as jb
from juno_bridge import root_file
from helpers.run_errors import error_of
from juno_bridge.cli import main
from juno_bridge.demo.models.builtin import builtin_model
from juno_bridge.demo.models.default import onnx_model
from juno_bridge.demo.toymc import generate
from juno_bridge.errors import InvalidArgumentError
from juno_bridge.run import complete_output, read_output, run_file, stale_output

pytestmark = [pytest.mark.root, pytest.mark.hdf5]
TINY = str(builtin_model("tiny"))     # x [B, 8] -> y [B, 4]
DENSE_EVENT_BYTES = 2 * 17612 * 4
HIT_TYPES = {"pmt_id": "var * int32", "npe": "var * float32", "time": "var * float32"}


def uproot():
    import uproot

    return uproot


def jagged(values: np.ndarray, offsets: np.ndarray):
    import awkward as ak

    return ak.unflatten(values, np.diff(offsets))


def hits_columns(events, a: int, b: int, types: dict) -> dict:
    offsets = events.offsets[a:b + 1]
    hits = slice(offsets[0], offsets[-1])
    return {name: jagged(getattr(events, name)[hits].astype(kind.split()[-1]), offsets - offsets[0])
            for name, kind in types.items()}


def write_hits_rntuple(path: Path, events, per_cluster: int = 10, name: str = "events", **types) -> Path:
    """Sparse hits as an RNTuple written by uproot directly, ``per_cluster`` events per extend (a cluster)."""
    types = {**HIT_TYPES, **types}
    with uproot().recreate(path) as f:
        ntuple = f.mkrntuple(name, types)
        for a in range(0, len(events), per_cluster):
            ntuple.extend(hits_columns(events, a, min(a + per_cluster, len(events)), types))
    return path


def write_hits_ttree(path: Path, events) -> Path:
    with uproot().recreate(path) as f:
        f.mktree("events", HIT_TYPES).extend(hits_columns(events, 0, len(events), HIT_TYPES))
    return path


def write_dense(path: Path, arrays: dict[str, np.ndarray], per_cluster: int = 10, kind: str = "rntuple") -> Path:
    with uproot().recreate(path) as f:
        types = {n: np.dtype((a.dtype, a.shape[1:])) for n, a in arrays.items()}
        tree = f.mkrntuple("events", types) if kind == "rntuple" else f.mktree("events", types)
        n = len(next(iter(arrays.values())))
        for a in range(0, n, per_cluster):
            tree.extend({name: array[a:a + per_cluster] for name, array in arrays.items()})
    return path


def read_root(path: Path, name: str = root_file.OUTPUT_TREE) -> tuple[str, dict[str, np.ndarray]]:
    """The class of the object ``name`` and its contents, as numpy arrays."""
    with uproot().open(path) as f:
        obj = f[name]
        return obj.classname, obj.arrays(library="np")


def read_h5(path: Path) -> dict[str, np.ndarray]:
    import h5py

    with h5py.File(path, "r") as f:
        return {n: f[n][...] for n in f}


def assert_bitwise_equal(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert sorted(got) == sorted(want)
    for name, array in want.items():
        g, w = np.ascontiguousarray(got[name]), np.ascontiguousarray(array)
        assert g.shape == w.shape and g.dtype.newbyteorder("=") == w.dtype.newbyteorder("="), name
        assert g.astype(g.dtype.newbyteorder("=")).tobytes() == w.astype(w.dtype.newbyteorder("=")).tobytes(), name


@pytest.fixture(scope="module")
def default_session():
    return jb.Session(str(onnx_model()))


def test_uproot_writes_an_rntuple_for_an_assigned_dict_and_run_reads_it(tmp_path):
    """The issue's case: ``file["events"] = {...}`` is an RNTuple in uproot 5.7; run refused it before."""
    x = np.random.default_rng(1).standard_normal((11, 8)).astype(np.float32)
    with uproot().recreate(tmp_path / "x.root") as f:
        f["events"] = {"x": x}
    with uproot().open(tmp_path / "x.root") as f:
        assert f.classnames() == {"events;1": "ROOT::RNTuple"}
    session = jb.Session(TINY)
    assert run_file(session, tmp_path / "x.root", tmp_path / "y.root", batch_size=4, progress=False) == 11
    kind, got = read_root(tmp_path / "y.root")
    assert kind == "TTree"  # a TTree by default, whatever the input
    assert_bitwise_equal(got, {"event_id": np.arange(11), "y": session.run({"x": x})["y"]})


def test_sparse_hits_as_an_rntuple_give_bitwise_the_ttree_paths_outputs(tmp_path, default_session):
    events = generate(70, seed=12)
    write_hits_ttree(tmp_path / "t.root", events)
    write_hits_rntuple(tmp_path / "r.root", events, per_cluster=9)
    for source in ("t", "r"):
        for suffix in (".root", ".h5", ".npz"):
            run_file(default_session, tmp_path / f"{source}.root", tmp_path / f"{source}-out{suffix}", batch_size=16,
                     progress=False)
    kind, reference = read_root(tmp_path / "t-out.root")
    assert kind == "TTree" and sorted(reference) == ["energy", "event_id", "vertex"]
    assert_bitwise_equal(read_root(tmp_path / "r-out.root")[1], reference)
    assert_bitwise_equal(read_h5(tmp_path / "r-out.h5"), read_h5(tmp_path / "t-out.h5"))
    assert_bitwise_equal(read_h5(tmp_path / "r-out.h5"), reference)
    with np.load(tmp_path / "r-out.npz") as got:
        assert_bitwise_equal(dict(got), reference)
    expected = default_session.run({"pmt": events.dense()})
    assert_bitwise_equal(reference, {"event_id": np.arange(70), **expected})


def test_dense_fields_of_an_rntuple_with_their_own_ids_give_bitwise_the_ttree_paths_outputs(tmp_path, default_session):
    events = generate(30, seed=13)
    arrays = {"pmt": events.dense(), "event_id": np.arange(30, dtype=np.int64) * 5 + 100}
    write_dense(tmp_path / "t.root", arrays, kind="ttree")
    write_dense(tmp_path / "r.root", arrays, per_cluster=7)
    with uproot().open(tmp_path / "r.root") as f:
        assert f["events"].classname == "ROOT::RNTuple"
    for source in ("t", "r"):
        for fmt in ("ttree", "rntuple"):
            run_file(default_session, tmp_path / f"{source}.root", tmp_path / f"{source}-{fmt}.root", batch_size=8,
                     progress=False, root_format=fmt)
    kind, reference = read_root(tmp_path / "t-ttree.root")
    assert kind == "TTree"
    np.testing.assert_array_equal(reference["event_id"], arrays["event_id"])  # the input's ids
    for name in ("t-rntuple", "r-ttree", "r-rntuple"):
        kind, got = read_root(tmp_path / f"{name}.root")
        assert kind == ("ROOT::RNTuple" if name.endswith("rntuple") else "TTree"), name
        assert_bitwise_equal(got, reference)


def test_an_rntuple_output_keeps_the_record_and_is_trusted_only_as_the_format_asked(tmp_path):
    x = np.random.default_rng(2).standard_normal((20, 8)).astype(np.float32)
    np.savez(tmp_path / "x.npz", x=x)
    session = jb.Session(TINY)
    run_file(session, tmp_path / "x.npz", tmp_path / "y.root", batch_size=6, progress=False, root_format="rntuple")
    kind, got = read_root(tmp_path / "y.root")
    assert kind == "ROOT::RNTuple"
    assert_bitwise_equal(got, {"event_id": np.arange(20), "y": session.run({"x": x})["y"]})
    record, counts = read_output(tmp_path / "y.root")
    assert counts == {20} and record["events"] == 20 and record["input"] == str(tmp_path / "x.npz")
    assert complete_output(tmp_path / "y.root")
    assert stale_output(tmp_path / "y.root", tmp_path / "x.npz", "rntuple") is None
    assert stale_output(tmp_path / "y.root", tmp_path / "x.npz") == "it is a rntuple, the run writes a ttree"
    whole = (tmp_path / "y.root").read_bytes()
    for cut in (len(whole) - 1, len(whole) // 2):
        (tmp_path / "cut.root").write_bytes(whole[:cut])
        assert not complete_output(tmp_path / "cut.root"), cut


def test_root_format_is_checked_and_only_for_root_outputs(tmp_path, capsys):
    np.savez(tmp_path / "x.npz", x=np.ones((2, 8), np.float32))
    with pytest.raises(InvalidArgumentError, match=r"ROOT format must be one of ttree, rntuple, got 'tree'"):
        run_file(jb.Session(TINY), tmp_path / "x.npz", tmp_path / "y.root", progress=False, root_format="tree")
    with pytest.raises(InvalidArgumentError, match=r"--root-format rntuple is for .root outputs; the output '.*y.h5' "
                                                   r"is .h5"):
        run_file(jb.Session(TINY), tmp_path / "x.npz", tmp_path / "y.h5", progress=False, root_format="rntuple")
    with pytest.raises(SystemExit) as exit_:
        main(["run", TINY, "-i", str(tmp_path / "x.npz"), "-o", str(tmp_path / "y.root"), "--root-format", "tree"])
    assert exit_.value.code == 2
    assert "invalid choice: 'tree' (choose from" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npz"]


@settings(max_examples=20, deadline=None)
@given(n_events=st.integers(1, 50), batch=st.integers(1, 60), per_cluster=st.integers(1, 20),
       fmt=st.sampled_from(["ttree", "rntuple"]))
def test_rntuple_in_gives_the_same_output_whatever_the_batch_and_cluster_sizes(tmp_path_factory, n_events, batch,
                                                                              per_cluster, fmt):
    directory = tmp_path_factory.mktemp("rnt")
    x = np.random.default_rng(n_events).standard_normal((n_events, 8)).astype(np.float32)
    write_dense(directory / "x.root", {"x": x}, per_cluster=per_cluster)
    session = jb.Session(TINY)
    assert run_file(session, directory / "x.root", directory / "y.root", batch_size=batch, progress=False,
                    root_format=fmt) == n_events
    kind, got = read_root(directory / "y.root")
    assert kind == {"ttree": "TTree", "rntuple": "ROOT::RNTuple"}[fmt]
    assert_bitwise_equal(got, {"event_id": np.arange(n_events), "y": session.run({"x": x})["y"]})
    if fmt == "rntuple":  # streamed: one cluster per batch
        with uproot().open(directory / "y.root") as f:
            assert len(f[root_file.OUTPUT_TREE].cluster_summaries) == -(-n_events // batch)


@settings(max_examples=6, deadline=None)
@given(batch=st.integers(1, 40), per_cluster=st.integers(1, 30))
def test_sparse_hits_rntuple_gives_the_same_outputs_whatever_the_batch(tmp_path_factory, default_session, batch,
                                                                       per_cluster):
    directory = tmp_path_factory.mktemp("hits")
    events = generate(29, seed=6)
    write_hits_rntuple(directory / "e.root", events, per_cluster=per_cluster)
    run_file(default_session, directory / "e.root", directory / "o.root", batch_size=batch, progress=False,
             root_format="rntuple")
    _, got = read_root(directory / "o.root")
    assert_bitwise_equal(got, {"event_id": np.arange(29), **default_session.run({"pmt": events.dense()})})


def test_an_rntuple_is_read_streamed_in_batches_so_memory_stays_far_below_the_files_dense_size(
        tmp_path, default_session, monkeypatch):
    """300 events (42 MB dense) in clusters of 10, batches of 8, out as an RNTuple: never the whole file (nor
    uproot's cache of every page read). 38 clusters out is also where uproot leaves a stale tail past the
    file's end (its free-segment list rewritten shorter), which the writer cuts before reading it back."""
    events = generate(300, seed=5)
    write_hits_rntuple(tmp_path / "big.root", events, per_cluster=10)
    dense_size = len(events) * DENSE_EVENT_BYTES
    steps = []
    behaviour = uproot().behaviors.RNTuple.HasFields
    iterate = behaviour.iterate

    def recording(self, *args, **kwargs):
        steps.append(kwargs.get("step_size"))
        return iterate(self, *args, **kwargs)

    monkeypatch.setattr(behaviour, "iterate", recording)
    tracemalloc.start()
    try:
        run_file(default_session, tmp_path / "big.root", tmp_path / "out.root", batch_size=8, progress=False,
                 root_format="rntuple")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert steps == [8]  # one pass over the RNTuple, 8 entries at a time
    assert peak < dense_size / 5, f"peak {peak / 1e6:.1f} MB for a {dense_size / 1e6:.1f} MB dense file"
    assert len(read_root(tmp_path / "out.root")[1]["energy"]) == 300


def test_toymc_writes_an_rntuple_that_run_reads_back_from_the_command_line(tmp_path, default_session):
    def cli(*args, code=0):
        done = subprocess.run([sys.executable, "-m", "juno_bridge.cli", *map(str, args)], capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == code, done.stderr
        return done.stdout + done.stderr

    assert "25 toy events" in cli("toymc", "-n", 25, "--seed", 8, "--out", tmp_path / "toy.root",
                                  "--root-format", "rntuple")
    events = generate(25, seed=8)
    kind, stored = read_root(tmp_path / "toy.root", "events")
    assert kind == "ROOT::RNTuple" and set(stored) == {"event_id", "pmt_id", "npe", "time", "vertex", "energy"}
    np.testing.assert_array_equal(stored["event_id"], np.arange(25))
    np.testing.assert_array_equal(np.concatenate(stored["pmt_id"]), events.pmt_id)
    np.testing.assert_array_equal(np.concatenate(stored["npe"]), events.npe)
    np.testing.assert_array_equal(np.concatenate(stored["time"]), events.time)
    np.testing.assert_array_equal(np.stack(stored["vertex"]), events.vertex)
    np.testing.assert_array_equal(stored["energy"], events.energy)
    assert "25 events" in cli("run", onnx_model(), "-i", tmp_path / "toy.root", "-o", tmp_path / "out.root",
                              "--root-format", "rntuple", "-b", 7, "-q")
    kind, got = read_root(tmp_path / "out.root")
    assert kind == "ROOT::RNTuple"
    assert_bitwise_equal(got, {"event_id": np.arange(25), **default_session.run({"pmt": events.dense()})})
    assert "--root-format rntuple is for a .root --out" in cli("toymc", "-n", 2, "--out", tmp_path / "t.h5",
                                                               "--root-format", "rntuple", code=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.root", "toy.root"]  # no temporaries left


# -- errors: as clear as a TTree's, naming the RNTuple and its fields --------------------------------------

def test_an_rntuple_of_neither_layout_names_both_and_the_fields_it_has(tmp_path, capsys):
    write_dense(tmp_path / "e.root", {"charge": np.ones((3, 5), np.float32), "event_id": np.arange(3)})
    err = error_of(tmp_path, capsys, onnx_model(), tmp_path / "e.root")
    assert ("RNTuple 'events' of '" in err and "matches neither layout: dense needs a field per model input (pmt), "
            "sparse hits need pmt_id, npe, time; it has fields charge, event_id" in err), err


def test_rntuple_fields_of_the_wrong_type_are_clear_errors(tmp_path, capsys):
    events = generate(3, seed=1)
    write_hits_rntuple(tmp_path / "f64.root", events, npe="var * float64")
    err = error_of(tmp_path, capsys, onnx_model(), tmp_path / "f64.root")
    assert ("field 'npe' of RNTuple 'events' of" in err and
            "holds float64[] per event; sparse hits need float32[] (a variable-length list per event)" in err), err
    write_hits_rntuple(tmp_path / "ids.root", events, pmt_id="var * float32")
    err = error_of(tmp_path, capsys, onnx_model(), tmp_path / "ids.root")
    assert "field 'pmt_id'" in err and "holds float32[] per event; sparse hits need int32[] or int64[]" in err, err
    with uproot().recreate(tmp_path / "jagged.root") as f:
        f.mkrntuple("events", {"x": "var * float32"}).extend({"x": jagged(np.ones(4, np.float32), np.array([0, 1, 4]))})
    err = error_of(tmp_path, capsys, TINY, tmp_path / "jagged.root")
    assert ("field 'x' of RNTuple 'events' of" in err and
            "holds float32[] per event; a model input needs a fixed-size array per event" in err), err
    write_dense(tmp_path / "f64x.root", {"x": np.ones((2, 8), np.float64)})
    assert "float32" in error_of(tmp_path, capsys, TINY, tmp_path / "f64x.root")  # the session's dtype check
    write_dense(tmp_path / "ids.root", {"x": np.ones((2, 8), np.float32), "event_id": np.ones(2, np.float32)})
    err = error_of(tmp_path, capsys, TINY, tmp_path / "ids.root")
    assert "field 'event_id'" in err and "holds float32 per event; expected one integer" in err, err


def test_a_truncated_rntuple_file_is_a_clear_error(tmp_path, capsys):
    write_hits_rntuple(tmp_path / "e.root", generate(40, seed=3))
    whole = (tmp_path / "e.root").read_bytes()
    for cut in (len(whole) - 10, len(whole) // 2):
        (tmp_path / "cut.root").write_bytes(whole[:cut])
        err = error_of(tmp_path, capsys, onnx_model(), tmp_path / "cut.root")
        assert f"'{tmp_path / 'cut.root'}' is truncated: its header says {len(whole)} bytes, the file has {cut}" in err


def test_a_damaged_rntuple_page_is_a_clear_error(tmp_path, capsys):
    write_hits_rntuple(tmp_path / "e.root", generate(40, seed=3))
    whole = bytearray((tmp_path / "e.root").read_bytes())
    whole[len(whole) // 2:len(whole) // 2 + 64] = bytes(64)  # inside the pages; the length as its header says
    (tmp_path / "bad.root").write_bytes(whole)
    err = error_of(tmp_path, capsys, onnx_model(), tmp_path / "bad.root")
    assert f"cannot read RNTuple 'events' of '{tmp_path / 'bad.root'}': " in err, err


def test_rntuples_and_ttrees_are_picked_by_name_else_events_else_the_only_one(tmp_path, capsys):
    x = np.arange(24, dtype=np.float32).reshape(3, 8)
    with uproot().recreate(tmp_path / "two.root") as f:
        f.mktree("other", {"x": np.dtype((np.float32, (8,)))}).extend({"x": x * 0})
        f.mkrntuple("events", {"x": np.dtype((np.float32, (8,)))}).extend({"x": x})
    session = jb.Session(TINY)
    for tree, want in [(None, x), ("other", x * 0), ("events", x)]:
        run_file(session, tmp_path / "two.root", tmp_path / "o.npz", progress=False, tree=tree)
        with np.load(tmp_path / "o.npz") as got:
            np.testing.assert_array_equal(got["y"], session.run({"x": want})["y"])
    with uproot().recreate(tmp_path / "pair.root") as f:
        f.mkrntuple("a", {"x": np.dtype((np.float32, (8,)))}).extend({"x": x})
        f.mktree("b", {"x": np.dtype((np.float32, (8,)))}).extend({"x": x})
    assert "holds several trees (TTree or RNTuple) and none named 'events': name one with --tree (a, b)" in error_of(
        tmp_path, capsys, TINY, tmp_path / "pair.root")
    assert "has no TTree or RNTuple 'c'; it holds a (ROOT::RNTuple), b (TTree)" in error_of(
        tmp_path, capsys, TINY, tmp_path / "pair.root", "--tree", "c")


# -- event_id in every output format ----------------------------------------------------------------------

def output_ids(path: Path) -> np.ndarray:
    if path.suffix == ".npz":
        with np.load(path) as f:
            return f["event_id"]
    if path.suffix == ".h5":
        return read_h5(path)["event_id"]
    return read_root(path)[1]["event_id"]


@pytest.mark.parametrize("suffix", [".npz", ".h5", ".root"])
def test_every_output_format_carries_event_id_as_the_root_output_does(tmp_path, suffix):
    """The input's ids where it has them (a ROOT tree's event_id), else each event's index (npz, HDF5, a
    tree without ids, sparse hits in HDF5)."""
    x = np.random.default_rng(4).standard_normal((13, 8)).astype(np.float32)
    ids = np.arange(13, dtype=np.int64)[::-1] * 3 + 7
    np.savez(tmp_path / "x.npz", x=x)
    write_dense(tmp_path / "ids.root", {"x": x, "event_id": ids}, per_cluster=4)
    write_dense(tmp_path / "plain.root", {"x": x}, per_cluster=4, kind="ttree")
    session = jb.Session(TINY)
    y = session.run({"x": x})["y"]
    for source, want in [("x.npz", np.arange(13)), ("ids.root", ids), ("plain.root", np.arange(13))]:
        out = tmp_path / f"out-{Path(source).stem}{suffix}"
        run_file(session, tmp_path / source, out, batch_size=5, progress=False)
        got = output_ids(out)
        assert got.dtype.newbyteorder("=") == np.int64, (source, got.dtype)
        np.testing.assert_array_equal(got, want)
        assert read_output(out)[1] == {13}  # event_id is as long as every output
        if suffix == ".npz":
            with np.load(out) as f:
                assert f.files == ["event_id", "y"]
                np.testing.assert_array_equal(f["y"], y)


@pytest.mark.parametrize("suffix", [".npz", ".h5", ".root"])
def test_a_model_output_named_event_id_is_a_clear_error_in_every_format(tmp_path, capsys, suffix):
    np.savez(tmp_path / "x.npz", x=np.ones((3, 8), np.float32))
    out = tmp_path / f"o{suffix}"
    assert main(["run", "python:helpers.id_algos:ids_out", "-i", str(tmp_path / "x.npz"), "-o", str(out), "-q"]) == 1
    err = capsys.readouterr().err
    assert "the model has an output named 'event_id', which the output " in err and "keeps for the events' ids" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npz"]


def test_sparse_hits_in_hdf5_get_their_index_as_event_id(tmp_path, default_session):
    events = generate(9, seed=9)
    events.save(tmp_path / "e.h5")
    for suffix in (".npz", ".h5"):
        run_file(default_session, tmp_path / "e.h5", tmp_path / f"o{suffix}", batch_size=4, progress=False)
        np.testing.assert_array_equal(output_ids(tmp_path / f"o{suffix}"), np.arange(9))


@settings(max_examples=6, deadline=None)
@given(sizes=st.lists(st.integers(1, 4), min_size=1, max_size=45), fmt=st.sampled_from(["ttree", "rntuple"]))
def test_write_hits_writes_any_number_of_chunks_whole_as_either_format(tmp_path_factory, sizes, fmt):
    """Each chunk one extend (a basket, a cluster); the file as long as its header says, every event there."""
    directory = tmp_path_factory.mktemp("hits")
    chunks = [generate(n, seed=i) for i, n in enumerate(sizes)]
    assert root_file.write_hits(directory / "e.root", iter(chunks), root_format=fmt) == sum(sizes)
    kind, stored = read_root(directory / "e.root", "events")
    assert kind == {"ttree": "TTree", "rntuple": "ROOT::RNTuple"}[fmt]
    with uproot().open(directory / "e.root") as f:
        assert f.file.fEND == (directory / "e.root").stat().st_size
    np.testing.assert_array_equal(stored["event_id"], np.arange(sum(sizes)))
    for name in ("pmt_id", "npe", "time"):
        np.testing.assert_array_equal(np.concatenate(list(stored[name])),
                                      np.concatenate([getattr(c, name) for c in chunks]))
    np.testing.assert_array_equal(stored["energy"], np.concatenate([c.energy for c in chunks]).astype(np.float32))
    assert sorted(p.name for p in directory.iterdir()) == ["e.root"]

