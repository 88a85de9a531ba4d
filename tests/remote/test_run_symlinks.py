"""`juno-bridge run` writes nothing outside its output folder: a link planted at the name of a temporary or of
the output is never followed (the output becomes a regular file, the link's target stays as it was), and an
output folder that is itself a symbolic link is refused unless asked for (--allow-symlinked-output)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import juno_bridge as jb
from juno_bridge.cli import main
from juno_bridge.demo.models.builtin import builtin_model
from juno_bridge.run import run_file

TINY = str(builtin_model("tiny"))
VICTIM = b"a file of someone else's, outside the output folder\n"


def events(path: Path, n: int = 40, seed: int = 0) -> str:
    np.savez(path, x=np.random.default_rng(seed).standard_normal((n, 8)).astype(np.float32))
    return str(path)


def outputs(path: Path) -> np.ndarray:
    if path.suffix == ".npz":
        with np.load(path) as f:
            return f["y"]
    if path.suffix == ".h5":
        import h5py

        with h5py.File(path) as f:
            return f["y"][...]
    import uproot

    with uproot.open(path) as f:
        return f["outputs"]["y"].array(library="np")


def expected(inp: str) -> np.ndarray:
    with np.load(inp) as f:
        return jb.Session(TINY).run({"x": f["x"]})["y"]


@pytest.mark.parametrize("suffix", [".npz", pytest.param(".h5", marks=pytest.mark.hdf5),
                                    pytest.param(".root", marks=pytest.mark.root)])
def test_a_link_planted_at_the_temporary_or_the_output_name_is_not_followed(tmp_path, suffix):
    inp = events(tmp_path / "a.npz")
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim"
    victim.write_bytes(VICTIM)
    final = out / f"a{suffix}"
    # The name an earlier release gave its temporary (predictable: the writer's PID), and the final name.
    (out / f".{final.name}.tmp{os.getpid()}").symlink_to(victim)
    final.symlink_to(victim)
    run_file(jb.Session(TINY), inp, final, progress=False)
    assert victim.read_bytes() == VICTIM
    assert not final.is_symlink() and final.is_file()
    np.testing.assert_array_equal(outputs(final), expected(inp))
    assert sorted(p.name for p in out.iterdir()) == sorted([final.name, f".{final.name}.tmp{os.getpid()}"])


@pytest.mark.dask
def test_a_symlinked_output_folder_is_refused_unless_allowed(tmp_path, capsys):
    inputs = [events(tmp_path / "a.npz"), events(tmp_path / "b.npz", seed=1)]
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    assert main(["run", TINY, "-i", inputs[0], "-o", str(link / "a.npz"), "-q"]) == 1
    err = capsys.readouterr().err
    assert f"output folder '{link}' is a symbolic link (to '{real}')" in err and "--allow-symlinked-output" in err
    assert main(["run", TINY, "-i", *inputs, "-o", str(link), "--workers", "1", "-q"]) == 1
    assert f"output folder '{link}' is a symbolic link (to '{real}')" in capsys.readouterr().err
    assert list(real.iterdir()) == []
    with pytest.raises(jb.InvalidArgumentError, match="is a symbolic link"):
        run_file(jb.Session(TINY), inputs[0], link / "a.npz", progress=False)
    assert main(["run", TINY, "-i", inputs[0], "-o", str(link / "a.npz"), "-q", "--allow-symlinked-output"]) == 0
    assert main(["run", TINY, "-i", *inputs, "-o", str(link), "--workers", "1", "-q",
                 "--allow-symlinked-output"]) == 0
    assert "1 file(s) done (40 events), 1 skipped" in capsys.readouterr().out
    for inp in inputs:
        np.testing.assert_array_equal(outputs(real / Path(inp).name), expected(inp))
    assert sorted(p.name for p in real.iterdir()) == ["a.npz", "b.npz"]


def test_an_output_gets_the_mode_the_umask_gives_not_the_temporarys(tmp_path):
    inp = events(tmp_path / "a.npz")
    old = os.umask(0o027)
    try:
        run_file(jb.Session(TINY), inp, tmp_path / "o.npz", progress=False)
    finally:
        os.umask(old)
    assert (tmp_path / "o.npz").stat().st_mode & 0o777 == 0o640
