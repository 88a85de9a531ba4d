"""`juno-bridge run` over many ROOT files on Dask: RNTuple inputs, outputs in the format `--root-format`
asks (``root_format=`` of run_files), and a rerun in the other format makes them again."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import juno_bridge as jb
from juno_bridge.cli import main
from juno_bridge.demo.models.builtin import builtin_model
from juno_bridge.run import run_files

pytestmark = [pytest.mark.dask, pytest.mark.root]
TINY = str(builtin_model("tiny"))  # x [B, 8] -> y [B, 4]


def write_rntuple(path: Path, x: np.ndarray, per_cluster: int = 5) -> str:
    import uproot

    with uproot.recreate(path) as f:
        ntuple = f.mkrntuple("events", {"x": np.dtype((np.float32, (8,)))})
        for a in range(0, len(x), per_cluster):
            ntuple.extend({"x": x[a:a + per_cluster]})
    return str(path)


def read_outputs(path: Path) -> tuple[str, dict[str, np.ndarray]]:
    import uproot

    with uproot.open(path) as f:
        return f["outputs"].classname, f["outputs"].arrays(library="np")


def test_run_files_writes_the_format_asked_and_a_rerun_in_the_other_format_redoes_it(tmp_path, worker_path):
    x = np.random.default_rng(5).standard_normal((17, 8)).astype(np.float32)
    inputs = [write_rntuple(tmp_path / f"e{i}.root", x + i) for i in range(2)]
    outputs = [tmp_path / "out" / f"e{i}.root" for i in range(2)]
    session = jb.Session(TINY)
    report = run_files(TINY, inputs, tmp_path / "out", workers=1, batch_size=6, progress=False,
                       root_format="rntuple")
    assert sorted(report.done) == sorted(inputs) and not report.failed
    for i, out in enumerate(outputs):
        kind, got = read_outputs(out)
        assert kind == "ROOT::RNTuple" and sorted(got) == ["event_id", "y"]
        np.testing.assert_array_equal(got["event_id"], np.arange(17))
        assert got["y"].tobytes() == session.run({"x": x + i})["y"].tobytes()
    again = run_files(TINY, inputs, tmp_path / "out", workers=1, batch_size=6, progress=False,
                      root_format="rntuple")
    assert sorted(again.skipped) == sorted(map(str, outputs)) and not again.done
    # The command without --root-format writes TTrees: the RNTuple outputs are made again.
    assert main(["run", TINY, "-i", *inputs, "-o", str(tmp_path / "out"), "--workers", "1", "-q"]) == 0
    for i, out in enumerate(outputs):
        kind, got = read_outputs(out)
        assert kind == "TTree"
        assert got["y"].astype(np.float32).tobytes() == session.run({"x": x + i})["y"].tobytes()


def test_root_format_without_root_outputs_is_an_error_before_any_work(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.ones((2, 8), np.float32))
    with pytest.raises(jb.InvalidArgumentError, match=r"--root-format rntuple is for .root outputs; the outputs keep "
                                                      r"their inputs' names and none of these inputs is a .root file"):
        run_files(TINY, [str(tmp_path / "a.npz")], tmp_path / "out", workers=1, progress=False, root_format="rntuple")
    with pytest.raises(jb.InvalidArgumentError, match=r"ROOT format must be one of ttree, rntuple, got 'x'"):
        run_files(TINY, [str(tmp_path / "a.npz")], tmp_path / "out", workers=1, progress=False, root_format="x")
    assert not list((tmp_path / "out").iterdir())
