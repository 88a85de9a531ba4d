"""`juno-bridge toymc --out` writes sparse-hit HDF5 event files; `juno-bridge run` reads them."""
import subprocess
import sys

import numpy as np
import pytest

import juno_bridge as jb
from juno_bridge import hits_file
from juno_bridge.errors import InputError

from juno_bridge.demo.models.builtin import builtin_model
from juno_bridge.demo.toymc import generate

pytestmark = pytest.mark.hdf5


def cli(*args):
    done = subprocess.run([sys.executable, "-m", "juno_bridge.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def test_toymc_writes_the_documented_layout(tmp_path):
    path = tmp_path / "events.h5"
    cli("toymc", "--events", 5, "--seed", 4, "--out", path)
    events = generate(5, seed=4)
    import h5py

    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "juno-bridge-hits" and f.attrs["version"] == 1 and f.attrs["n_pmt"] == 17612
        for name, dtype, expected in [("offsets", np.int64, events.offsets), ("pmt_id", np.int32, events.pmt_id),
                                      ("npe", np.float32, events.npe), ("time", np.float32, events.time),
                                      ("vertex", np.float32, events.vertex), ("energy", np.float32, events.energy)]:
            assert f[name].dtype == dtype
            np.testing.assert_array_equal(f[name][...], expected)


def test_dense_events_scatter_like_the_generator(tmp_path):
    events = generate(4, seed=2)
    events.save(tmp_path / "e.h5")
    dense = hits_file.DenseEvents(tmp_path / "e.h5")
    assert len(dense) == 4 and dense.shape == (4, 2, 17612)
    np.testing.assert_array_equal(dense[1:3], events.dense(1, 3))
    with pytest.raises(TypeError, match="slices"):
        dense[0]


def test_run_reads_a_hits_file_and_matches_the_session(tmp_path):
    model = builtin_model("juno")
    events = generate(6, seed=9)
    events.save(tmp_path / "events.h5")
    cli("run", model, "--input", tmp_path / "events.h5", "--output", tmp_path / "out.npz", "--batch-size", 4, "-q")
    expected = jb.Session(model).run({jb.Session(model).inputs()[0].name: events.dense()})
    with np.load(tmp_path / "out.npz") as got:
        for name, array in expected.items():
            np.testing.assert_allclose(got[name], array, rtol=1e-5, atol=1e-5)


def test_write_refuses_inconsistent_hits(tmp_path):
    with pytest.raises(InputError, match="offsets"):
        hits_file.write(tmp_path / "bad.h5", [0, 3, 2], [1, 2], [1, 1], [0, 0])
    with pytest.raises(InputError, match="hits"):
        hits_file.write(tmp_path / "bad.h5", [0, 3], [1, 2], [1, 1], [0, 0])
