"""`juno-bridge run` over many event files on Dask (a LocalCluster of 2 worker processes): the same
outputs as the serial path, resumable, a killed worker loses nothing, a bad file is reported."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import juno_bridge as jb
from juno_bridge.cli import main
from juno_bridge.demo.models.builtin import builtin_model
from juno_bridge.run import output_paths, run_file, run_files

pytestmark = pytest.mark.dask
TINY = str(builtin_model("tiny"))


def event_files(directory: Path, count: int, suffix: str = ".npz") -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        x = np.random.default_rng(i).standard_normal((50 + 13 * i, 8)).astype(np.float32)
        path = directory / f"events{i}{suffix}"
        if suffix == ".npz":
            np.savez(path, x=x)
        else:
            import h5py

            with h5py.File(path, "w") as f:
                f["x"] = x
        paths.append(str(path))
    return paths


def serial_outputs(model: str, inputs: list[str], directory: Path) -> dict[str, np.ndarray]:
    session = jb.Session(model, intra_op_threads=1)
    directory.mkdir()
    result = {}
    for inp, out in output_paths(inputs, directory).items():
        run_file(session, inp, out, batch_size=16, progress=False)
        with np.load(out) as f:
            result[Path(inp).name] = f["y"]
    return result


def outputs_in(directory: Path) -> dict[str, np.ndarray]:
    result = {}
    for path in sorted(directory.glob("*.npz")):
        with np.load(path) as f:
            result[path.name] = f["y"]
    return result


def test_files_over_two_workers_equal_the_serial_run_and_a_rerun_skips_them(tmp_path, worker_path):
    inputs = event_files(tmp_path / "in", 6)
    expected = serial_outputs(TINY, inputs, tmp_path / "serial")
    report = run_files(TINY, inputs, tmp_path / "out", workers=2, batch_size=16, progress=False)
    assert sorted(report.done) == sorted(inputs) and not report.failed and not report.skipped
    assert sum(report.done.values()) == sum(50 + 13 * i for i in range(6))
    got = outputs_in(tmp_path / "out")
    assert got.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name])
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temporary left
    # Resumable: a second run (the command, this time) finds every output and touches none.
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()}
    assert main(["run", TINY, "-i", *inputs, "-o", str(tmp_path / "out"), "--workers", "2", "-q"]) == 0
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()} == stamps


def test_a_worker_killed_during_a_task_loses_nothing(tmp_path, worker_path, monkeypatch):
    monkeypatch.setenv("JB_TEST_KILL_MARKER", str(tmp_path / "killed-once"))
    inputs = event_files(tmp_path / "in", 4)
    expected = serial_outputs("python:helpers.dask_algos:linear", inputs, tmp_path / "serial")
    report = run_files("python:helpers.dask_algos:dies_once", inputs, tmp_path / "out", workers=2, batch_size=16,
                       retries=0, progress=False)
    assert (tmp_path / "killed-once").exists()  # a worker really died mid-task
    assert sorted(report.done) == sorted(inputs) and not report.failed
    got = outputs_in(tmp_path / "out")
    assert got.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name])


def test_a_failing_file_is_retried_then_reported_while_the_rest_complete(tmp_path, worker_path, capsys):
    inputs = event_files(tmp_path / "in", 3)
    bad = tmp_path / "in" / "bad.npz"
    np.savez(bad, wrong=np.zeros((4, 8), np.float32))
    code = main(["run", TINY, "-i", *inputs, str(bad), "-o", str(tmp_path / "out"), "--workers", "2",
                 "--retries", "1", "-q"])
    assert code == 1
    printed = capsys.readouterr().out
    assert "3 file(s) done" in printed and "1 failed" in printed
    assert f"failed: {bad}: InputError: input file '{bad}' lacks the model input(s) x" in printed
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [Path(p).name for p in inputs]


@pytest.mark.hdf5
def test_hdf5_files_and_one_file_into_a_directory(tmp_path, worker_path):
    inputs = event_files(tmp_path / "in", 2, suffix=".h5")
    report = run_files(TINY, inputs, tmp_path / "out", workers=1, batch_size=16, progress=False)
    assert len(report.done) == 2
    session = jb.Session(TINY)
    import h5py

    for inp in inputs:
        with h5py.File(inp) as f, h5py.File(tmp_path / "out" / Path(inp).name) as g:
            np.testing.assert_array_equal(g["y"][...], session.run({"x": f["x"][...]})["y"])


def test_outputs_that_would_collide_and_bad_settings_are_refused(tmp_path):
    a = event_files(tmp_path / "a", 1)
    b = event_files(tmp_path / "b", 1)
    with pytest.raises(jb.InvalidArgumentError, match="share a file name"):
        run_files(TINY, a + b, tmp_path / "out")
    with pytest.raises(jb.InvalidArgumentError, match="--workers must be >= 1"):
        run_files(TINY, a, tmp_path / "out", workers=0)
    with pytest.raises(jb.InvalidArgumentError, match="do not exist"):
        run_files(TINY, [str(tmp_path / "missing.npz")], tmp_path / "out")


def root_files(directory: Path, count: int) -> list[str]:
    import uproot

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = directory / f"events{i}.root"
        with uproot.recreate(path) as f:
            f.mktree("events", {"x": np.dtype((np.float32, (8,)))}).extend(
                {"x": np.random.default_rng(i).standard_normal((64, 8)).astype(np.float32)})
        paths.append(str(path))
    return paths


@pytest.mark.root
def test_a_worker_killed_mid_write_leaves_no_temporary_after_a_successful_run(tmp_path, worker_path, monkeypatch):
    """A ROOT output is written batch by batch: the worker dies with its temporary half written, the task is
    done again by another worker, and what the dead one left is swept (by the task done again, else at the
    run's end)."""
    monkeypatch.setenv("JB_TEST_KILL_MARKER", str(tmp_path / "killed-once"))
    inputs = root_files(tmp_path / "in", 3)
    report = run_files("python:helpers.dask_algos:dies_mid_file", inputs, tmp_path / "out", workers=2, batch_size=16,
                       retries=0, progress=False)
    assert (tmp_path / "killed-once").exists()  # a worker really died in the middle of a file
    assert sorted(report.done) == sorted(inputs) and not report.failed
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [Path(p).name for p in inputs]
    import uproot

    session = jb.Session("python:helpers.dask_algos:linear")
    for inp in inputs:
        with uproot.open(inp) as f, uproot.open(tmp_path / "out" / Path(inp).name) as g:
            np.testing.assert_array_equal(g["outputs"]["y"].array(library="np"),
                                          session.run({"x": f["events"]["x"].array(library="np")})["y"])


def test_the_sweep_removes_only_temporaries_of_dead_writers(tmp_path):
    import os
    import subprocess
    import time

    from juno_bridge.atomic_file import sweep_temporaries, temporary_prefix

    child = subprocess.Popen(["true"])
    child.wait()
    dead, live = child.pid, os.getpid()
    host = temporary_prefix(Path("x")).split("@", 1)[1][:-1]
    names = {f".a.npz.tmp{dead}@{host}-abcd1234": True,       # this host, writer gone
             f".b.npz.tmp{dead}": True,                       # an older release's name, writer gone
             f".c.npz.tmp{live}@{host}-abcd1234": False,      # a live writer
             f".d.npz.tmp{dead}@otherhost-abcd1234": False,   # another host: fresh, perhaps writing
             f".e.npz.tmp{dead}@otherhost-efgh5678": True,    # another host, untouched for two days
             f"f.npz.tmp{dead}": False,                       # not hidden: not ours
             ".g.npz": False}
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    old = time.time() - 2 * 24 * 3600
    os.utime(tmp_path / f".e.npz.tmp{dead}@otherhost-efgh5678", (old, old))
    victim = tmp_path / "victim"
    victim.write_bytes(b"x")
    (tmp_path / f".h.npz.tmp{dead}@{host}-abcd1234").symlink_to(victim)  # a link is never ours
    assert sorted(sweep_temporaries(tmp_path)) == sorted(n for n, gone in names.items() if gone)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [n for n, gone in names.items() if not gone] + ["victim", f".h.npz.tmp{dead}@{host}-abcd1234"])
    assert sweep_temporaries(tmp_path, "c.npz") == [] and victim.read_bytes() == b"x"
