"""`juno-bridge run` reads ROOT TTrees (one branch per model input, or sparse hits) and writes its outputs as
a TTree, batch by batch; `juno-bridge toymc --out x.root` writes toy events as one. Files here are written
by uproot itself, as any user's would be, and the outputs are compared with the HDF5 path's."""
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
from juno_bridge.demo.models.builtin import builtin_model
from juno_bridge.demo.models.default import onnx_model
from juno_bridge.demo.toymc import generate
from juno_bridge.errors import InputError
from juno_bridge.run import complete_output, run_file

pytestmark = [pytest.mark.root, pytest.mark.hdf5]
TINY = str(builtin_model("tiny"))     # x [B, 8] -> y [B, 4]: cheap, for the dense layout
DENSE_EVENT_BYTES = 2 * 17612 * 4     # one event as the default model takes it


def uproot():
    import uproot

    return uproot


def jagged(values: np.ndarray, offsets: np.ndarray):
    import awkward as ak

    return ak.unflatten(values, np.diff(offsets))


def write_hits_tree(path: Path, events, per_basket: int = 10, tree: str = "events", **types) -> Path:
    """Events as a sparse-hits TTree written by uproot directly (not our writer): each branch with its own
    counter (uproot's default naming), ``per_basket`` events per extend (so per basket)."""
    branch_types = {"pmt_id": "var * int32", "npe": "var * float32", "time": "var * float32", **types}
    with uproot().recreate(path) as f:
        t = f.mktree(tree, branch_types)
        for a in range(0, len(events), per_basket):
            b = min(a + per_basket, len(events))
            offsets = events.offsets[a:b + 1]
            hits = slice(offsets[0], offsets[-1])
            t.extend({name: jagged(getattr(events, name)[hits].astype(kind.split()[-1]), offsets - offsets[0])
                      for name, kind in branch_types.items()})
    return path


def write_dense_tree(path: Path, arrays: dict[str, np.ndarray], per_basket: int = 10, tree: str = "events") -> Path:
    with uproot().recreate(path) as f:
        t = f.mktree(tree, {n: np.dtype((a.dtype, a.shape[1:])) for n, a in arrays.items()})
        n = len(next(iter(arrays.values())))
        for a in range(0, n, per_basket):
            t.extend({name: array[a:a + per_basket] for name, array in arrays.items()})
    return path


def read_tree(path: Path, tree: str = root_file.OUTPUT_TREE) -> dict[str, np.ndarray]:
    with uproot().open(path) as f:
        return f[tree].arrays(library="np")


def read_h5(path: Path) -> dict[str, np.ndarray]:
    import h5py

    with h5py.File(path, "r") as f:
        return {n: f[n][...] for n in f}


@pytest.fixture(scope="module")
def default_session():
    return jb.Session(str(onnx_model()))


@pytest.fixture(scope="module")
def toy_events():
    return generate(120, seed=11)


def test_sparse_hits_read_through_run_give_exactly_the_hdf5_paths_outputs(tmp_path, default_session, toy_events):
    toy_events.save(tmp_path / "events.h5")
    write_hits_tree(tmp_path / "events.root", toy_events)
    for out in ("h5.h5", "h5.root"):
        run_file(default_session, tmp_path / "events.h5", tmp_path / out, batch_size=32, progress=False)
    for out in ("root.h5", "root.root"):
        run_file(default_session, tmp_path / "events.root", tmp_path / out, batch_size=32, progress=False)
    reference = read_h5(tmp_path / "h5.h5")
    assert set(reference) == {"event_id", "vertex", "energy"} and len(reference["energy"]) == 120
    for got in (read_h5(tmp_path / "root.h5"), read_tree(tmp_path / "h5.root"), read_tree(tmp_path / "root.root")):
        for name, array in reference.items():
            assert got[name].dtype == array.dtype and got[name].shape == array.shape
            np.testing.assert_array_equal(got[name], array)
    np.testing.assert_array_equal(read_tree(tmp_path / "root.root")["event_id"], np.arange(120))


def test_dense_branches_read_through_run_give_exactly_the_hdf5_paths_outputs(tmp_path, default_session):
    """The default model's `pmt` as a float32[2][17612] branch, beside the input tree's own event ids."""
    events = generate(40, seed=11)
    pmt = events.dense()
    ids = np.arange(1000, 1040, dtype=np.int64) * 7
    write_dense_tree(tmp_path / "dense.root", {"pmt": pmt, "event_id": ids})
    with uproot().open(tmp_path / "dense.root") as f:
        assert f["events"]["pmt"].typename == "float[2][17612]"
    run_file(default_session, tmp_path / "dense.root", tmp_path / "out.root", batch_size=16, progress=False)
    got = read_tree(tmp_path / "out.root")
    expected = default_session.run({"pmt": pmt})
    np.testing.assert_array_equal(got["event_id"], ids)  # the input's ids, not entry numbers
    for name, array in expected.items():
        np.testing.assert_array_equal(got[name], array)
    # And the same events as sparse hits: the scatter in the reader makes exactly this dense input.
    write_hits_tree(tmp_path / "sparse.root", events)
    run_file(default_session, tmp_path / "sparse.root", tmp_path / "sparse-out.h5", batch_size=16, progress=False)
    sparse = read_h5(tmp_path / "sparse-out.h5")
    for name in expected:
        np.testing.assert_array_equal(sparse[name], got[name])


def test_a_model_of_several_inputs_reads_one_branch_each(tmp_path, add_f32):
    session = jb.Session(str(add_f32))  # c = a + b
    rng = np.random.default_rng(3)
    arrays = {"a": rng.standard_normal((9, 5)).astype(np.float32), "b": rng.standard_normal((9, 5)).astype(np.float32)}
    write_dense_tree(tmp_path / "ab.root", arrays, per_basket=4)
    np.savez(tmp_path / "ab.npz", **arrays)
    run_file(session, tmp_path / "ab.root", tmp_path / "a.npz", batch_size=4, progress=False)
    run_file(session, tmp_path / "ab.npz", tmp_path / "b.npz", batch_size=4, progress=False)
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        assert a.files == b.files == ["event_id", "c"]
        np.testing.assert_array_equal(a["c"], b["c"])
        np.testing.assert_array_equal(a["c"], arrays["a"] + arrays["b"])


@settings(max_examples=25)
@given(n_events=st.integers(1, 60), batch=st.integers(1, 70), per_basket=st.integers(1, 25))
def test_the_output_is_identical_whatever_the_batch_and_basket_sizes(tmp_path_factory, n_events, batch, per_basket):
    directory = tmp_path_factory.mktemp("chunks")
    x = np.random.default_rng(n_events).standard_normal((n_events, 8)).astype(np.float32)
    write_dense_tree(directory / "x.root", {"x": x}, per_basket=per_basket)
    session = jb.Session(TINY)
    assert run_file(session, directory / "x.root", directory / "y.root", batch_size=batch, progress=False) == n_events
    got = read_tree(directory / "y.root")
    np.testing.assert_array_equal(got["y"], session.run({"x": x})["y"])
    np.testing.assert_array_equal(got["event_id"], np.arange(n_events))
    with uproot().open(directory / "y.root") as f:  # streamed: one basket per batch
        assert f[root_file.OUTPUT_TREE]["y"].num_baskets == -(-n_events // batch)


@settings(max_examples=8)
@given(batch=st.integers(1, 45))
def test_sparse_hits_give_the_same_outputs_whatever_the_batch(tmp_path_factory, default_session, batch):
    directory = tmp_path_factory.mktemp("hits")
    events = generate(37, seed=4)
    write_hits_tree(directory / "e.root", events, per_basket=6)
    run_file(default_session, directory / "e.root", directory / "o.root", batch_size=batch, progress=False)
    got = read_tree(directory / "o.root")
    for name, array in default_session.run({"pmt": events.dense()}).items():
        np.testing.assert_array_equal(got[name], array)


def test_reading_is_streamed_in_batches_so_memory_stays_far_below_the_files_dense_size(tmp_path, default_session,
                                                                                          monkeypatch):
    """300 events (42 MB dense) in baskets of 10, batches of 8: the run never holds the whole file."""
    events = generate(300, seed=5)
    write_hits_tree(tmp_path / "big.root", events, per_basket=10)
    dense_size = len(events) * DENSE_EVENT_BYTES
    steps = []
    iterate = uproot().TTree.iterate

    def recording(self, *args, **kwargs):
        steps.append(kwargs.get("step_size"))
        return iterate(self, *args, **kwargs)

    monkeypatch.setattr(uproot().TTree, "iterate", recording)
    tracemalloc.start()
    try:
        run_file(default_session, tmp_path / "big.root", tmp_path / "out.root", batch_size=8, progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert steps == [8]  # one pass over the tree, 8 entries at a time
    assert peak < dense_size / 5, f"peak {peak / 1e6:.1f} MB for a {dense_size / 1e6:.1f} MB dense file"
    assert len(read_tree(tmp_path / "out.root")["energy"]) == 300


def test_toymc_writes_a_root_file_that_run_reads_back_from_the_command_line(tmp_path, default_session):
    def cli(*args):
        done = subprocess.run([sys.executable, "-m", "juno_bridge.cli", *map(str, args)], capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "30 toy events" in cli("toymc", "--events", 30, "--seed", 8, "--out", tmp_path / "toy.root")
    events = generate(30, seed=8)
    stored = read_tree(tmp_path / "toy.root", "events")
    assert set(stored) == {"event_id", "nhits", "pmt_id", "npe", "time", "vertex", "energy"}
    np.testing.assert_array_equal(stored["event_id"], np.arange(30))
    np.testing.assert_array_equal(stored["nhits"], np.diff(events.offsets))
    np.testing.assert_array_equal(np.concatenate(stored["pmt_id"]), events.pmt_id)
    np.testing.assert_array_equal(np.concatenate(stored["time"]), events.time)
    np.testing.assert_array_equal(np.stack(stored["vertex"]), events.vertex)
    np.testing.assert_array_equal(stored["energy"], events.energy)
    assert "30 events" in cli("run", onnx_model(), "-i", tmp_path / "toy.root", "-o", tmp_path / "out.root",
                              "--tree", "events", "-b", 7, "-q")
    got = read_tree(tmp_path / "out.root")
    for name, array in default_session.run({"pmt": events.dense()}).items():
        np.testing.assert_array_equal(got[name], array)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.root", "toy.root"]  # no temporaries left


def test_the_tree_is_the_named_one_else_events_else_the_only_one(tmp_path):
    x = np.arange(24, dtype=np.float32).reshape(3, 8)
    with uproot().recreate(tmp_path / "two.root") as f:
        f.mktree("other", {"x": np.dtype((np.float32, (8,)))}).extend({"x": x * 0})
        f.mktree("events", {"x": np.dtype((np.float32, (8,)))}).extend({"x": x})
    write_dense_tree(tmp_path / "one.root", {"x": x}, tree="reco")
    session = jb.Session(TINY)
    expected = session.run({"x": x})["y"]
    for source, tree, want in [("two.root", None, expected), ("two.root", "other", session.run({"x": x * 0})["y"]),
                               ("one.root", None, expected)]:
        run_file(session, tmp_path / source, tmp_path / "o.npz", progress=False, tree=tree)
        with np.load(tmp_path / "o.npz") as got:
            np.testing.assert_array_equal(got["y"], want)


def test_complete_output_takes_a_whole_root_output_and_refuses_a_truncated_one(tmp_path):
    x = np.ones((200, 8), np.float32)
    write_dense_tree(tmp_path / "x.root", {"x": x})
    run_file(jb.Session(TINY), tmp_path / "x.root", tmp_path / "y.root", batch_size=16, progress=False)
    assert complete_output(tmp_path / "y.root")
    whole = (tmp_path / "y.root").read_bytes()
    for cut in (len(whole) - 1, len(whole) // 2, 100):
        (tmp_path / "cut.root").write_bytes(whole[:cut])
        assert not complete_output(tmp_path / "cut.root"), cut
    assert not complete_output(tmp_path / "x.root")  # an event file, not an output: no 'outputs' tree
    (tmp_path / "text.root").write_text("not ROOT")
    assert not complete_output(tmp_path / "text.root")


# -- errors: clear, naming what was expected and what came; from the command line one line, exit code 1 ----

def test_a_truncated_root_file_is_a_clear_error(tmp_path, capsys, toy_events):
    write_hits_tree(tmp_path / "e.root", toy_events)
    whole = (tmp_path / "e.root").read_bytes()
    for cut in (len(whole) - 10, len(whole) // 2):
        (tmp_path / "cut.root").write_bytes(whole[:cut])
        err = error_of(tmp_path, capsys, onnx_model(), tmp_path / "cut.root")
        assert f"'{tmp_path / 'cut.root'}' is truncated: its header says {len(whole)} bytes, the file has {cut}" in err
    (tmp_path / "cut.root").write_bytes(whole[:200])
    assert "is not a readable ROOT file" in error_of(tmp_path, capsys, onnx_model(), tmp_path / "cut.root")


def test_a_tree_of_neither_layout_names_both_and_the_branches_it_has(tmp_path, capsys):
    write_dense_tree(tmp_path / "e.root", {"charge": np.ones((3, 5), np.float32), "event_id": np.arange(3)})
    err = error_of(tmp_path, capsys, onnx_model(), tmp_path / "e.root")
    assert ("tree 'events' of '" in err and "matches neither layout: dense needs a branch per model input (pmt), "
            "sparse hits need pmt_id, npe, time; it has branches charge, event_id" in err), err


def test_missing_and_unnamed_trees_are_clear_errors(tmp_path, capsys):
    with uproot().recreate(tmp_path / "none.root") as f:
        f["note"] = "no tree here"
    assert "holds no TTree or RNTuple; it holds note (TObjString)" in error_of(tmp_path, capsys, TINY,
                                                                                tmp_path / "none.root")
    with uproot().recreate(tmp_path / "two.root") as f:
        for name in ("a", "b"):
            f.mktree(name, {"x": np.dtype((np.float32, (8,)))}).extend({"x": np.ones((2, 8), np.float32)})
    assert "holds several trees (TTree or RNTuple) and none named 'events': name one with --tree (a, b)" in error_of(
        tmp_path, capsys, TINY, tmp_path / "two.root")
    assert "has no TTree or RNTuple 'c'; it holds a (TTree), b (TTree)" in error_of(
        tmp_path, capsys, TINY, tmp_path / "two.root", "--tree", "c")


def test_branches_of_the_wrong_type_are_clear_errors(tmp_path, capsys):
    events = generate(3, seed=1)
    write_hits_tree(tmp_path / "f64.root", events, npe="var * float64")
    err = error_of(tmp_path, capsys, onnx_model(), tmp_path / "f64.root")
    assert ("branch 'npe' of tree 'events' of" in err
            and "holds float64[] per event; sparse hits need float32[] (a variable-length list per event)" in err), err
    write_hits_tree(tmp_path / "ids.root", events, pmt_id="var * float32")
    assert "branch 'pmt_id'" in (err := error_of(tmp_path, capsys, onnx_model(), tmp_path / "ids.root")) and \
        "holds float32[] per event; sparse hits need int32[] or int64[]" in err, err
    with uproot().recreate(tmp_path / "jagged.root") as f:
        f.mktree("events", {"x": "var * float32"}).extend({"x": jagged(np.ones(4, np.float32), np.array([0, 1, 4]))})
    assert ("branch 'x' of tree 'events' of" in (err := error_of(tmp_path, capsys, TINY, tmp_path / "jagged.root"))
            and "holds float32[] per event; a model input needs a fixed-size array per event" in err), err
    write_dense_tree(tmp_path / "f64x.root", {"x": np.ones((2, 8), np.float64)})
    assert "float32" in error_of(tmp_path, capsys, TINY, tmp_path / "f64x.root")  # the session's dtype check
    write_dense_tree(tmp_path / "ids.root", {"x": np.ones((2, 8), np.float32), "event_id": np.ones(2, np.float32)})
    assert "branch 'event_id'" in (err := error_of(tmp_path, capsys, TINY, tmp_path / "ids.root")) and \
        "holds float32 per event; expected one integer" in err, err


def test_hits_out_of_range_or_of_unequal_counts_are_clear_errors(tmp_path, capsys):
    events = generate(12, seed=2)
    events.pmt_id[events.offsets[9] + 3] = 17612
    write_hits_tree(tmp_path / "range.root", events, per_basket=5)
    err = error_of(tmp_path, capsys, onnx_model(), tmp_path / "range.root", "-b", "4")
    assert "tree 'events' of" in err and "event 9: scatter_hits: pmt id 17612 (hit 3) is out of range [0, 17612)" in err
    events = generate(4, seed=2)
    with uproot().recreate(tmp_path / "counts.root") as f:  # separate counters let the counts differ
        t = f.mktree("events", {"pmt_id": "var * int32", "npe": "var * float32", "time": "var * float32"})
        npe_offsets = events.offsets.copy()
        npe_offsets[2:] -= 1  # event 1 one hit short in npe
        t.extend({"pmt_id": jagged(events.pmt_id, events.offsets), "time": jagged(events.time, events.offsets),
                  "npe": jagged(events.npe[:-1], npe_offsets)})
    err = error_of(tmp_path, capsys, onnx_model(), tmp_path / "counts.root")
    assert (f"entry 1: pmt_id, npe and time must hold as many hits each; pmt_id holds {np.diff(events.offsets)[1]}, "
            f"npe {np.diff(events.offsets)[1] - 1}") in err, err


def test_sparse_hits_feed_only_a_model_of_one_input(tmp_path, add_f32):
    write_hits_tree(tmp_path / "e.root", generate(2, seed=1))
    with pytest.raises(InputError, match="holds sparse hits, which feed a model of one input; this model takes a, b"):
        run_file(jb.Session(str(add_f32)), tmp_path / "e.root", tmp_path / "o.root", progress=False)


def test_an_empty_tree_is_a_clear_error(tmp_path, capsys):
    with uproot().recreate(tmp_path / "empty.root") as f:
        f.mktree("events", {"x": np.dtype((np.float32, (8,)))})
    assert "holds no events" in error_of(tmp_path, capsys, TINY, tmp_path / "empty.root")
