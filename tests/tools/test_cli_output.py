"""What a person reads from the juno-bridge command: usage errors of the command they typed, and stderr
without the native libraries' start-up chatter (unless --verbose), with everything else passed through."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.optional import require
from juno_bridge import native_stderr

EXE = [sys.executable, "-m", "juno_bridge.cli"]
TESTS = Path(__file__).resolve().parents[1]  # holds helpers/, with the tests' algorithms
ABSL = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


def cli(*args):
    return subprocess.run([*EXE, *map(str, args)], capture_output=True, text=True, timeout=300)


def test_an_unknown_option_after_the_positional_shows_the_commands_usage(tmp_path):
    done = cli("run", "default", "-i", tmp_path / "x.h5", "-o", tmp_path / "y.npz", "--bogus")
    assert done.returncode == 2
    assert done.stderr.startswith("usage: juno-bridge run "), done.stderr
    assert "juno-bridge run: error: unrecognized arguments: --bogus" in done.stderr


def test_info_keeps_tensorflows_start_up_lines_off_stderr_unless_verbose():
    require("tf")  # TensorFlow and the tf plugin (which loads TensorFlow's C library into `info`)
    quiet, verbose = cli("info"), cli("--verbose", "info")
    assert quiet.returncode == 0 and verbose.returncode == 0
    assert ABSL in verbose.stderr and "oneDNN" in verbose.stderr, verbose.stderr  # what TensorFlow says
    assert ABSL not in quiet.stderr and "oneDNN" not in quiet.stderr, quiet.stderr
    assert "tensorflow:" in quiet.stdout


def test_the_filter_drops_only_the_noise_and_passes_partial_lines_at_once(capfd):
    noise = (ABSL + "\nI0000 00:00:1796412132.555720   15978 port.cc:153] oneDNN custom operations are on.\n")
    with native_stderr.filtered():
        os.write(2, b"first line\n")
        os.write(2, noise.encode())
        os.write(2, b"\rprogress 10%")  # a progress bar: no newline
        os.write(2, b"\rprogress 20%")
        os.write(2, b"\nI0000 but not a log line\nW1204 12:00:00.000000 1 other.cc:1] a warning\nlast")
    err = capfd.readouterr().err
    assert err == ("first line\n\rprogress 10%\rprogress 20%\nI0000 but not a log line\n"
                   "W1204 12:00:00.000000 1 other.cc:1] a warning\nlast"), repr(err)


def test_the_filter_passes_a_childs_writes(capfd):
    with native_stderr.filtered():
        subprocess.run([sys.executable, "-c", f"import sys; sys.stderr.write({ABSL!r} + '\\nfrom the child\\n')"],
                       check=True)
    assert capfd.readouterr().err == "from the child\n"


def test_toymc_refuses_an_output_suffix_run_cannot_read(tmp_path):
    done = cli("toymc", "--events", "3", "--out", tmp_path / "y.csv")
    assert done.returncode == 2
    assert "--out must end in .h5 or .hdf5 (HDF5 sparse hits) or .root" in done.stderr and "y.csv" in done.stderr
    assert not (tmp_path / "y.csv").exists()
    assert cli("toymc", "--events", "3", "--out", tmp_path / "y.h5").returncode == 0


@pytest.mark.parametrize("output", ["/nonexistent/dir/x.npz", "/nonexistent/dir/x.h5", "/nonexistent/dir/x.root"])
def test_run_checks_the_output_can_be_written_before_the_first_event(tmp_path, output):
    import numpy as np

    np.savez(tmp_path / "in.npz", x=np.ones((10, 8), np.float32))
    mark = tmp_path / "mark"
    env = dict(os.environ, JB_TEST_MARK=str(mark),
               PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))

    def run(out):
        return subprocess.run([*EXE, "run", "python:helpers.pyalgos:marking", "-i", str(tmp_path / "in.npz"), "-o",
                               str(out), "-q"], capture_output=True, text=True, timeout=300, env=env)

    done = run(output)
    assert done.returncode == 1
    assert "/nonexistent/dir" in done.stderr and "No such file or directory" in done.stderr, done.stderr
    assert not mark.exists(), "events ran before the output was found unwritable"
    # the same run with a writable output does run the events
    ok = run(tmp_path / Path(output).name)
    assert ok.returncode == 0, ok.stderr
    assert mark.read_text().split() == ["10"]


def test_run_takes_the_model_name_default(tmp_path):
    import numpy as np

    assert cli("toymc", "--events", "5", "--out", tmp_path / "ev.h5").returncode == 0
    done = cli("run", "default", "-i", tmp_path / "ev.h5", "-o", tmp_path / "out.npz", "-q")
    assert done.returncode == 0, done.stderr
    with np.load(tmp_path / "out.npz") as out:
        assert out["vertex"].shape == (5, 3) and out["energy"].shape == (5,) and np.isfinite(out["energy"]).all()
