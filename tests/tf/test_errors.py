"""Bad input to the tf plugin: a clear error naming what was expected and what came, never a crash."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import tf_models as tm
from helpers.native_build import clean_env

import juno_bridge as jb


@pytest.fixture(scope="module")
def session():
    return jb.Session(tm.tiny())


def test_wrong_shape_names_the_input_and_both_shapes(session):
    with pytest.raises(jb.InputError, match=r"input 'x': expected shape \[\?, 8\], got \[3, 7\]"):
        session.run({"x": tm.aligned(np.ones((3, 7), np.float32))})
    with pytest.raises(jb.InputError, match=r"input 'x': expected rank 2"):
        session.run({"x": tm.aligned(np.ones((3, 8, 1), np.float32))})


def test_wrong_dtype_names_the_input_and_both_dtypes(session):
    with pytest.raises(jb.InputTypeError, match=r"input 'x': expected dtype float32, got float64"):
        session.run({"x": tm.aligned(np.ones((3, 8), np.float64))})


def test_wrong_output_buffer_is_refused_before_tensorflow_runs(session):
    x = tm.aligned(np.ones((3, 8), np.float32))
    with pytest.raises(jb.InputError, match=r"output 'y'"):
        session.run({"x": x}, out={"y": np.empty((3, 5), np.float32)})


def test_missing_signature_lists_the_models_signatures():
    with pytest.raises(jb.ModelLoadError, match=r"no signature 'nope'.*'halves', 'serving_default'"):
        jb.Session(tm.tiny(), config={"signature": "nope"})


def test_missing_saved_model_is_a_model_load_error(tmp_path):
    with pytest.raises(jb.ModelLoadError, match=r"cannot open SavedModel .*no such directory"):
        jb.Session(tmp_path / "absent.savedmodel")
    (tmp_path / "empty.savedmodel").mkdir()
    with pytest.raises(jb.ModelLoadError, match=r"has no saved_model.pb"):
        jb.Session(tmp_path / "empty.savedmodel")


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_saved_model_is_a_model_load_error(tmp_path, damage):
    import shutil
    path = tmp_path / "corrupt.savedmodel"
    shutil.copytree(tm.tiny(), path)
    pb = path / "saved_model.pb"
    data = pb.read_bytes()
    pb.write_bytes(b"\xff\xfe not a protobuf" * 10 if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(jb.ModelLoadError, match=r"cannot load SavedModel"):
        jb.Session(path)


def test_unknown_option_and_bad_copy_flag_are_invalid_arguments():
    with pytest.raises(jb.InvalidArgumentError, match=r"unknown option 'colour'.*copy_unaligned"):
        jb.Session(tm.tiny(), config={"colour": "blue"})
    with pytest.raises(jb.InvalidArgumentError, match=r"'copy_unaligned' is '0' or '1'"):
        jb.Session(tm.tiny(), config={"copy_unaligned": "yes"})


def test_wrong_tags_name_the_tags(tmp_path):
    with pytest.raises(jb.ModelLoadError, match=r"cannot load SavedModel.*gpu"):
        jb.Session(tm.tiny(), config={"tags": "gpu"})


def test_plugin_built_without_tensorflow_serves_the_imported_release():
    # No same-version rule any more: the plugin is built without TensorFlow and serves the release
    # Python imported, whatever it is (tests/tf/test_tf_releases.py runs another release as well).
    custom = jb.Session(tm.tiny()).metadata()["custom"]
    assert custom["tensorflow_version"] == tm.tf.__version__
    assert Path(custom["tensorflow_library"]) == (Path(tm.tf.__file__).parent / "libtensorflow_cc.so.2").resolve()


def test_library_that_is_not_tensorflow_is_refused_by_name(tmp_path):
    # A real library lacking TensorFlow's C API (here libz), requested in a process without TensorFlow.
    # cwd: `python -c` puts it first on sys.path, and the clean env has no PYTHONSAFEPATH (tests/conftest.py)
    import ctypes.util
    libz = ctypes.util.find_library("z")
    code = ("import juno_bridge as jb, sys\n"
            "try:\n    jb.Session(sys.argv[1], config={'tensorflow': sys.argv[2]})\n"
            "except jb.BackendUnavailableError as e:\n    print(e)\n")
    env = {**clean_env(), "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-c", code, str(tm.tiny()), libz], env=env, capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "TensorFlow requested with the option 'tensorflow' is unusable: '" in done.stdout
    assert "it lacks TF_Version, TF_NewStatus" in done.stdout and "TensorFlow 2.16 or newer" in done.stdout
