"""`juno-bridge run` never leaves an output a resumed run would take for done: a run SIGKILLed in the middle
of a big write leaves no output under the final name and the resumed run completes it (and redoes a
truncated file); a full disk and a read-only output folder are clear errors with exit code 1 and nothing
written or marked done (an HDF5 output on a nearly full disk too, which h5py used to leave zero-filled and
crash on); a resumed run keeps only outputs that match their input and says why it redoes the others. The
full disk and the read-only folder are real: small tmpfs mounts (root) or, without root, a folder chmod 0555
and a file-size limit (RLIMIT_FSIZE) for the write error."""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

import juno_bridge as jb
from juno_bridge.cli import main
from juno_bridge.demo.models.builtin import builtin_model
from juno_bridge.run import complete_output, run_file

WIDE = "python:helpers.dask_algos:wide"  # 16 KiB of output per event
TINY = str(builtin_model("tiny"))


def events(path: Path, n: int, seed: int = 0) -> str:
    np.savez(path, x=np.random.default_rng(seed).standard_normal((n, 8)).astype(np.float32))
    return str(path)


def expected(model: str, inp: str) -> np.ndarray:
    with np.load(inp) as f:
        return jb.Session(model).run({"x": f["x"]})["y"]


def mount_tmpfs(where: Path, options: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("a tmpfs mount needs root (the full-disk case has no unprivileged equivalent here)")
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


@pytest.fixture
def mounts():
    mounted = []
    yield lambda where, options: (mount_tmpfs(where, options), mounted.append(where))
    for where in mounted:
        subprocess.run(["umount", str(where)], check=True)


def test_a_run_killed_mid_write_leaves_no_output_and_the_resumed_run_completes_it(tmp_path, worker_path):
    big = events(tmp_path / "big.npz", 6000)              # a 94 MiB output
    small = events(tmp_path / "small.npz", 300, seed=1)
    done = events(tmp_path / "done.npz", 200, seed=2)
    out = tmp_path / "out"
    out.mkdir()
    run = subprocess.Popen([sys.executable, "-m", "juno_bridge.cli", "run", WIDE, "-i", big, "-o",
                            str(out / "big.npz"), "-q"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    temporaries: list[Path] = []
    while time.monotonic() < deadline and run.poll() is None:
        temporaries = [p for p in out.glob(".big.npz.tmp*") if p.stat().st_size > 0]
        if temporaries:
            break
        time.sleep(0.001)
    assert temporaries, f"never caught the run writing (exit {run.poll()}): {run.stderr.read() if run.poll() else ''}"
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert not (out / "big.npz").exists()  # killed mid-write: nothing under the final name
    assert temporaries[0].exists() and temporaries[0].stat().st_size < 6000 * 4096 * 4
    # Beside it, a truncated output under the final name (what a non-atomic writer leaves) and a done one.
    session = jb.Session(WIDE)
    run_file(session, small, out / "small.npz", progress=False)
    whole = (out / "small.npz").read_bytes()
    (out / "small.npz").write_bytes(whole[: len(whole) // 2])
    assert not complete_output(out / "small.npz")
    run_file(session, done, out / "done.npz", progress=False)
    stamp = (out / "done.npz").stat().st_mtime_ns
    assert main(["run", WIDE, "-i", big, small, done, "-o", str(out), "--workers", "1", "-q"]) == 0
    for inp in (big, small, done):
        with np.load(out / Path(inp).name) as f:
            np.testing.assert_array_equal(f["y"], expected(WIDE, inp))
    assert (out / "done.npz").stat().st_mtime_ns == stamp  # complete: skipped, not redone
    assert sorted(p.name for p in out.iterdir()) == ["big.npz", "done.npz", "small.npz"]  # temporary swept


def test_a_full_disk_is_a_clear_error_and_nothing_is_written_or_marked_done(tmp_path, mounts, capsys, worker_path):
    full = tmp_path / "full"
    mounts(full, "size=64k")
    inputs = [events(tmp_path / "a.npz", 100), events(tmp_path / "b.npz", 100, seed=1)]  # 1.6 MB outputs each
    assert main(["run", WIDE, "-i", inputs[0], "-o", str(full / "a.npz"), "-q"]) == 1
    err = capsys.readouterr().err
    assert f"cannot write output file '{full / 'a.npz'}': No space left on device" in err, err
    assert list(full.iterdir()) == []
    assert main(["run", WIDE, "-i", *inputs, "-o", str(full), "--workers", "1", "--retries", "0", "-q"]) == 1
    printed = capsys.readouterr().out
    assert "0 file(s) done" in printed and "2 failed" in printed, printed
    assert printed.count("No space left on device") == 2, printed
    assert list(full.iterdir()) == []


def test_a_read_only_output_folder_is_a_clear_error_and_nothing_is_done(tmp_path, capsys):
    ro = tmp_path / "ro"
    inp = events(tmp_path / "a.npz", 50)
    if os.geteuid() == 0:
        mount_tmpfs(ro, "ro,size=1m")
    else:
        ro.mkdir()
        ro.chmod(0o555)
    try:
        assert main(["run", TINY, "-i", inp, "-o", str(ro / "a.npz"), "-q"]) == 1
        err = capsys.readouterr().err
        reason = "Read-only file system" if os.geteuid() == 0 else "Permission denied"
        assert f"cannot write output file '{ro / 'a.npz'}': {reason}" in err, err
        assert main(["run", TINY, "-i", inp, "-o", str(ro), "--workers", "1", "-q"]) == 1
        err = capsys.readouterr().err
        assert f"output folder '{ro}' is not writable: {reason}" in err, err
        assert list(ro.iterdir()) == []
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(ro)], check=True)


@pytest.mark.hdf5
def test_a_full_disk_under_an_hdf5_output_is_the_same_clear_error(tmp_path, mounts, capsys, worker_path):
    full = tmp_path / "full"
    mounts(full, "size=64k")
    assert main(["run", WIDE, "-i", events(tmp_path / "a.npz", 100), "-o", str(full / "a.h5"), "-q"]) == 1
    err = capsys.readouterr().err
    assert f"cannot write output file '{full / 'a.h5'}': No space left on device (ENOSPC)" in err, err
    assert list(full.iterdir()) == []


def root_events(path: Path, n: int, seed: int = 0) -> str:
    import uproot

    with uproot.recreate(path) as f:
        f.mktree("events", {"x": np.dtype((np.float32, (8,)))}).extend(
            {"x": np.random.default_rng(seed).standard_normal((n, 8)).astype(np.float32)})
    return str(path)


@pytest.mark.root
def test_a_full_disk_or_a_read_only_folder_under_a_root_output_is_the_same_clear_error(tmp_path, mounts, capsys,
                                                                                       worker_path):
    full, ro = tmp_path / "full", tmp_path / "ro"
    mounts(full, "size=64k")
    mounts(ro, "ro,size=1m")
    inp = events(tmp_path / "a.npz", 1000, seed=3)  # 16 MB of output, ~0.4 MB compressed in ROOT
    assert main(["run", WIDE, "-i", inp, "-o", str(full / "a.root"), "-q"]) == 1
    err = capsys.readouterr().err
    assert f"cannot write output file '{full / 'a.root'}': No space left on device (ENOSPC)" in err, err
    assert main(["run", TINY, "-i", inp, "-o", str(ro / "a.root"), "-q"]) == 1
    err = capsys.readouterr().err
    assert f"cannot write output file '{ro / 'a.root'}': Read-only file system (EROFS)" in err, err
    assert list(full.iterdir()) == [] and list(ro.iterdir()) == []


@pytest.mark.root
@pytest.mark.dask
def test_a_resumed_run_skips_whole_root_outputs_and_redoes_a_truncated_one(tmp_path):
    inputs = [root_events(tmp_path / f"{name}.root", 40 + 10 * i, seed=i)
              for i, name in enumerate(("done", "cut", "new"))]
    out = tmp_path / "out"
    out.mkdir()
    session = jb.Session(TINY)
    run_file(session, inputs[0], out / "done.root", progress=False)
    run_file(session, inputs[1], out / "cut.root", progress=False)
    whole = (out / "cut.root").read_bytes()
    (out / "cut.root").write_bytes(whole[:-100])
    assert complete_output(out / "done.root") and not complete_output(out / "cut.root")
    stamp = (out / "done.root").stat().st_mtime_ns
    assert main(["run", TINY, "-i", *inputs, "-o", str(out), "--workers", "1", "-q"]) == 0
    assert (out / "done.root").stat().st_mtime_ns == stamp  # whole: skipped
    import uproot

    for inp in inputs:
        with uproot.open(inp) as f:
            x = f["events"]["x"].array(library="np")
        with uproot.open(out / Path(inp).name) as f:
            np.testing.assert_array_equal(f["outputs"]["y"].array(library="np"), session.run({"x": x})["y"])
    assert sorted(p.name for p in out.iterdir()) == ["cut.root", "done.root", "new.root"]


LINEAR = "python:helpers.dask_algos:linear"  # 16 bytes of output per event


def fill(where: Path, leave: int = 4096) -> Path:
    """Fills the file system of ``where`` but ``leave`` bytes (a nearly full disk); returns the filler."""
    filler = where / "filler"
    info = os.statvfs(where)
    with open(filler, "wb") as f:
        f.write(b"\0" * (info.f_bavail * info.f_frsize - leave))
    assert os.statvfs(where).f_bavail * os.statvfs(where).f_frsize == leave
    return filler


def h5_events(path: Path, n: int, seed: int = 0) -> str:
    import h5py

    with h5py.File(path, "w") as f:
        f["x"] = np.random.default_rng(seed).standard_normal((n, 8)).astype(np.float32)
    return str(path)


def h5_expected(inp: str) -> np.ndarray:
    import h5py

    with h5py.File(inp) as f:
        return jb.Session(LINEAR).run({"x": f["x"][...]})["y"]


def cli(*args: str) -> subprocess.CompletedProcess:
    """The command in a process of its own: a crash (a signal) is an exit code here, not the end of pytest."""
    return subprocess.run([sys.executable, "-m", "juno_bridge.cli", *args], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.hdf5
@pytest.mark.dask
def test_an_hdf5_output_on_a_nearly_full_disk_fails_clearly_and_a_rerun_with_space_makes_it(tmp_path, mounts,
                                                                                             worker_path):
    """h5py swallowed the write error at close: the serial run crashed (SIGSEGV), the Dask run counted a file
    zero-filled from byte 4096 on as done, and a rerun skipped it."""
    disk = tmp_path / "disk"
    mounts(disk, "size=4m")
    filler = fill(disk)
    inp = h5_events(tmp_path / "a.h5", 1000)  # 16 kB of output: more than the 4 kB left
    serial = cli("run", LINEAR, "-i", inp, "-o", str(disk / "a.h5"), "-q")
    assert serial.returncode == 1, (serial.returncode, serial.stderr[-2000:])
    assert f"cannot write output file '{disk / 'a.h5'}': No space left on device (ENOSPC)" in serial.stderr
    assert "Traceback" not in serial.stderr, serial.stderr
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]
    many = cli("run", LINEAR, "-i", inp, "-o", str(disk), "--workers", "1", "--retries", "0", "-q")
    assert many.returncode == 1, (many.returncode, many.stdout, many.stderr[-2000:])
    assert f"failed: {inp}: cannot write output file '{disk / 'a.h5'}': No space left on device" in many.stdout
    assert "0 file(s) done" in many.stdout and "1 failed" in many.stdout, many.stdout
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]  # nothing a rerun would take for done
    filler.unlink()
    again = cli("run", LINEAR, "-i", inp, "-o", str(disk), "--workers", "1", "-q")
    assert again.returncode == 0 and "1 file(s) done (1000 events), 0 skipped" in again.stdout, again.stdout
    import h5py

    with h5py.File(disk / "a.h5") as f:
        np.testing.assert_array_equal(f["y"][...], h5_expected(inp))


@pytest.mark.dask
def test_a_disk_full_dask_run_prints_one_line_per_failed_file_and_a_summary(tmp_path, mounts, worker_path):
    full = tmp_path / "full"
    mounts(full, "size=64k")
    inputs = [events(tmp_path / f"e{i}.npz", 100, seed=i) for i in range(3)]  # 1.6 MB outputs each
    done = cli("run", WIDE, "-i", *inputs, "-o", str(full), "--workers", "2", "--retries", "1", "-q")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert len(lines) == 4, done.stdout
    for inp, line in zip(sorted(inputs), sorted(lines[:3])):
        assert line == (f"failed: {inp}: cannot write output file '{full / Path(inp).name}': No space left on "
                        "device (ENOSPC)"), line
    assert lines[3] == "0 file(s) done (0 events), 0 skipped (already done), 3 failed"
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) <= 3, done.stderr
    assert list(full.iterdir()) == []


def test_a_resumed_run_keeps_only_outputs_that_match_their_input_and_says_why_it_redoes_the_others(tmp_path, capsys):
    inputs = {name: events(tmp_path / f"{name}.npz", 30 + i, seed=i)
              for i, name in enumerate(("same", "changed", "foreign", "linked", "empty"))}
    out = tmp_path / "out"
    out.mkdir()
    session = jb.Session(TINY)
    for name in ("same", "changed"):
        run_file(session, inputs[name], out / f"{name}.npz", progress=False)
    stamp = (out / "same.npz").stat().st_mtime_ns
    events(tmp_path / "changed.npz", 33, seed=9)  # the input changed after its output was made
    # An output of the right length that no run of this input wrote (another program, an older release).
    np.savez(out / "foreign.npz", y=np.zeros((32, 4), np.float32))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run_file(session, inputs["linked"], elsewhere / "linked.npz", progress=False)
    target = (elsewhere / "linked.npz").read_bytes()
    (out / "linked.npz").symlink_to(elsewhere / "linked.npz")  # a whole output of this input, through a link
    (out / "empty.npz").write_bytes(b"")
    assert main(["run", TINY, "-i", *inputs.values(), "-o", str(out), "--workers", "1", "-q"]) == 0
    printed = capsys.readouterr().out
    assert (out / "same.npz").stat().st_mtime_ns == stamp and "4 file(s) done" in printed and "1 skipped" in printed
    assert f"redone: {out / 'changed.npz'}: its input changed since" in printed, printed
    assert f"redone: {out / 'foreign.npz'}: it holds no record of its input" in printed, printed
    assert f"redone: {out / 'linked.npz'}: it is a symbolic link (to '{elsewhere / 'linked.npz'}')" in printed
    assert f"redone: {out / 'empty.npz'}: it cannot be read" in printed, printed
    assert (elsewhere / "linked.npz").read_bytes() == target
    for name, inp in inputs.items():
        assert not (out / f"{name}.npz").is_symlink()
        with np.load(out / f"{name}.npz") as f:
            np.testing.assert_array_equal(f["y"], expected(TINY, inp))
    assert main(["run", TINY, "-i", *inputs.values(), "-o", str(out), "--workers", "1", "-q"]) == 0
    assert "0 file(s) done (0 events), 5 skipped" in capsys.readouterr().out


def _file_size_limit(limit: int):
    """For a child: writes past ``limit`` bytes fail with EFBIG (SIGXFSZ ignored, so the write returns the
    error rather than killing the process): a write error without root, as a full disk gives one."""
    def preexec() -> None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


@pytest.mark.hdf5
def test_an_hdf5_output_past_the_file_size_limit_fails_clearly_without_root(tmp_path, worker_path):
    """The same write error as a full disk, where no tmpfs can be mounted: RLIMIT_FSIZE in a child process."""
    inp = h5_events(tmp_path / "a.h5", 1000)  # 16 kB of output
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run([sys.executable, "-m", "juno_bridge.cli", "run", LINEAR, "-i", inp, "-o", str(out / "a.h5"),
                           "-q"], capture_output=True, text=True, timeout=300, preexec_fn=_file_size_limit(8192))
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    assert f"cannot write output file '{out / 'a.h5'}': File too large (EFBIG)" in done.stderr, done.stderr
    assert list(out.iterdir()) == []
    assert main(["run", LINEAR, "-i", inp, "-o", str(out / "a.h5"), "-q"]) == 0
    import h5py

    with h5py.File(out / "a.h5") as f:
        np.testing.assert_array_equal(f["y"][...], h5_expected(inp))


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("a tmpfs mount needs root (test_an_hdf5_output_past_the_file_size_limit covers the write error)")
    where = tmp_path_factory.mktemp("small") / "disk"
    mount_tmpfs(where, "size=1m")
    yield where
    subprocess.run(["umount", str(where)], check=True)


@pytest.mark.hdf5
@given(free_pages=st.integers(0, 12), n=st.integers(1, 3000), columns=st.integers(1, 8),
       dtype=st.sampled_from(["float32", "float64", "int16", "bool"]), suffix=st.sampled_from([".npz", ".h5"]))
def test_whatever_space_is_left_an_output_is_exact_or_absent(small_disk, free_pages, n, columns, dtype, suffix):
    """The disk fills at any byte of the write (data, metadata or the close): the output then does not exist
    and the error says so; otherwise it holds exactly what was written, with its record."""
    from juno_bridge.run import read_output, write_outputs

    for p in small_disk.iterdir():
        p.unlink()
    fill(small_disk, leave=free_pages * 4096)
    arrays = {"y": (np.arange(n * columns).reshape(n, columns) % 7).astype(dtype), "e": np.arange(n, dtype=np.int64)}
    out = small_disk / f"o{suffix}"
    try:
        write_outputs(out, arrays, {"events": n})
    except jb.RunError as err:
        event("the disk was full")
        assert f"cannot write output file '{out}': No space left on device (ENOSPC)" in str(err), str(err)
        assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]
        return
    event("written")
    assert sorted(p.name for p in small_disk.iterdir()) == sorted(["filler", out.name])
    assert read_output(out) == ({"events": n}, {n})
    if suffix == ".npz":
        with np.load(out) as f:
            got = {name: f[name] for name in f.files}
    else:
        import h5py

        with h5py.File(out) as f:
            got = {name: f[name][...] for name in f}
    assert got.keys() == arrays.keys()
    for name, array in arrays.items():
        np.testing.assert_array_equal(got[name], array)
        assert got[name].dtype == array.dtype


def test_a_writer_that_gives_up_after_a_dropped_write_is_reported_by_the_write_error(small_disk):
    """The latch kept a full disk's error from h5py; if the writer then fails on what it cannot read back, the
    error names the cause (the full disk), not the writer's confusion."""
    from juno_bridge.atomic_file import replacing

    for p in small_disk.iterdir():
        p.unlink()
    fill(small_disk, leave=0)
    out = small_disk / "x.h5"
    with pytest.raises(jb.RunError, match=rf"cannot write output file '{out}': No space left on device \(ENOSPC\)"):
        with replacing(out) as tmp:
            f = tmp.latched()
            assert f.write(b"x" * 8192) == 8192  # dropped, not failed
            assert f.error is not None and f.error.errno == errno.ENOSPC
            raise ValueError("what a writer raises on reading back what it never wrote")
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]
