"""One plugin, several TensorFlow releases: the tf plugin binds TensorFlow's C API at run time.

This process imports the installed TensorFlow (2.21) to write the SavedModels and the reference
outputs; another release (2.20, pip-installed into the test cache) runs in subprocesses that never
import tensorflow, from Python and from a C++ program. One process holds one release: the one Python
imported is reused, and asking for another then is a clear error naming both.
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import tf_models as tm
from helpers.native_build import CPP_TESTS, build_against_package, clean_env
from helpers.tf_releases import OTHER_RELEASE, python_env, run_python

import juno_bridge as jb

INSTALLED = Path(tm.tf.__file__).parent / "libtensorflow_cc.so.2"

# Runs the SavedModels given in argv[2:] with the TensorFlow named in argv[1] ("" = the default), on
# 64-byte aligned input; prints per model its outputs, the TensorFlow that ran, and where it read.
RUN_MODELS = """
import json, sys
import numpy as np
import juno_bridge as jb
config = {"tensorflow": sys.argv[1]} if sys.argv[1] else {}
x = jb.empty((3, 8), np.float32)
x[...] = (0.01 * np.arange(24, dtype=np.float32) - np.float32(0.1)).reshape(3, 8)
report = {}
for model in sys.argv[2:]:
    s = jb.Session(model, config=config)
    outputs = s.run({"x": x})
    custom = s.metadata()["custom"]
    report[model] = {"outputs": {k: v.tolist() for k, v in outputs.items()},
                     "version": custom["tensorflow_version"], "library": custom["tensorflow_library"],
                     "read_in_place": s._stats()["input_addresses"] == [x.ctypes.data]}
print(json.dumps(report))
"""


def _program_input() -> np.ndarray:
    return (0.01 * np.arange(24, dtype=np.float32) - np.float32(0.1)).reshape(3, 8)


def _reference() -> dict:
    """What TensorFlow 2.21 itself computes in this process, per model and output."""
    x = _program_input()
    keras_model, keras_path, _ = tm.keras_mlp()
    return {str(tm.tiny()): {"y": tm.affine_module().serve(tm.tf.constant(x))["y"].numpy()},
            str(keras_path): {"output_0": np.asarray(keras_model.predict_on_batch(x))}}


def _check(report: dict, version: str, folder: Path) -> None:
    want = _reference()
    assert set(report) == set(want)
    for model, outputs in want.items():
        got = report[model]
        assert got["version"] == version
        assert Path(got["library"]) == (folder / "libtensorflow_cc.so.2").resolve()
        assert got["read_in_place"], f"{model}: TensorFlow {version} copied the aligned input"
        for name, values in outputs.items():
            np.testing.assert_allclose(np.array(got["outputs"][name], np.float32), values, rtol=1e-6, atol=1e-6)


def test_installed_release_from_a_process_without_tensorflow_imported():
    done = run_python(RUN_MODELS, "", *_reference())
    _check(json.loads(done.stdout), tm.tf.__version__, INSTALLED.parent)


@pytest.mark.parametrize("name", ["folder", "library file"])
def test_other_release_by_option_gives_the_same_outputs_from_python(other_tensorflow, name):
    requested = other_tensorflow if name == "folder" else other_tensorflow / "libtensorflow_cc.so.2"
    done = run_python(RUN_MODELS, requested, *_reference())
    _check(json.loads(done.stdout), OTHER_RELEASE, other_tensorflow)


def test_other_release_by_environment_gives_the_same_outputs_from_python(other_tensorflow):
    done = run_python(RUN_MODELS, "", *_reference(), env=python_env(JUNO_BRIDGE_TENSORFLOW=str(other_tensorflow)))
    _check(json.loads(done.stdout), OTHER_RELEASE, other_tensorflow)


@pytest.fixture(scope="module")
def run_tf(tmp_path_factory) -> Path:
    return build_against_package(CPP_TESTS / "run_tf.cpp", tmp_path_factory.mktemp("run_tf_releases") / "run_tf")


@pytest.mark.parametrize("release", ["installed", "other"])
def test_cpp_program_gives_the_same_outputs_with_each_release(run_tf, other_tensorflow, release):
    env = clean_env()
    if release == "other":
        env["JUNO_BRIDGE_TENSORFLOW"] = str(other_tensorflow)
    want = _reference()
    done = subprocess.run([str(run_tf), *want], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()]
    got = {(r[0], r[1]): np.array(r[2:], np.float32) for r in rows}
    for model, outputs in want.items():
        for name, values in outputs.items():
            np.testing.assert_allclose(got[(model, name)], values.ravel(), rtol=1e-6, atol=1e-6)


OPTION_PROGRAM = r"""
#include <cstdio>
#include "juno_bridge/session.hpp"
int main(int argc, char** argv) {
  jb::SessionOptions options;
  options.set("tensorflow", argv[2]);
  jb::Session session(argv[1], options);
  auto custom = session.metadata().custom;
  std::printf("%s %s\n", custom["tensorflow_version"].c_str(), custom["tensorflow_library"].c_str());
}
"""


def test_cpp_option_tensorflow_names_the_release(tmp_path, other_tensorflow):
    (tmp_path / "option.cpp").write_text(OPTION_PROGRAM)
    build_against_package(tmp_path / "option.cpp", tmp_path / "option", optimization="-O0")
    done = subprocess.run([str(tmp_path / "option"), str(tm.tiny()), str(other_tensorflow)], env=clean_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [OTHER_RELEASE, str((other_tensorflow / "libtensorflow_cc.so.2").resolve())]


def test_tensorflow_imported_by_python_is_reused():
    s = jb.Session(tm.tiny())
    custom = s.metadata()["custom"]
    assert custom["tensorflow_version"] == tm.tf.__version__
    assert Path(custom["tensorflow_library"]) == INSTALLED.resolve()
    # Naming the same library again (its folder, or the file) is no conflict.
    for same in (INSTALLED.parent, INSTALLED, "libtensorflow_cc.so.2"):  # the last: as the loader finds it
        assert jb.Session(tm.tiny(), config={"tensorflow": same}).metadata()["custom"]["tensorflow_library"] == \
            custom["tensorflow_library"]


def test_other_release_requested_after_python_imported_one_is_a_clear_error(other_tensorflow):
    with pytest.raises(jb.BackendUnavailableError) as e:
        jb.Session(tm.tiny(), config={"tensorflow": other_tensorflow})
    message = str(e.value)
    assert f"TensorFlow {tm.tf.__version__} from '{INSTALLED.resolve()}' is already loaded" in message
    assert f"'{other_tensorflow}', release {OTHER_RELEASE}" in message
    assert "one process holds one TensorFlow release" in message
    # The process still works with the TensorFlow it has.
    x = tm.aligned(_program_input())
    np.testing.assert_allclose(jb.Session(tm.tiny()).run({"x": x})["y"], _reference()[str(tm.tiny())]["y"],
                               rtol=1e-6, atol=1e-6)


def test_other_release_in_one_process_then_the_installed_one_is_refused(other_tensorflow):
    code = """
import juno_bridge as jb
jb.Session(sys.argv[1], config={"tensorflow": sys.argv[2]})
try:
    jb.Session(sys.argv[1], config={"tensorflow": sys.argv[3]})
except jb.BackendUnavailableError as e:
    print(e)
"""
    done = run_python(code, tm.tiny(), other_tensorflow, INSTALLED.parent)
    assert f"TensorFlow {OTHER_RELEASE} from '{(other_tensorflow / 'libtensorflow_cc.so.2').resolve()}'" in done.stdout
    assert f"release {tm.tf.__version__}" in done.stdout and "is already loaded" in done.stdout


def test_requested_library_that_does_not_exist_is_named(tmp_path):
    code = """
import juno_bridge as jb
try:
    jb.Session(sys.argv[1], config={"tensorflow": sys.argv[2]})
except jb.BackendUnavailableError as e:
    print(e)
"""
    done = run_python(code, tm.tiny(), tmp_path / "nowhere")
    assert f"TensorFlow requested with the option 'tensorflow' is unusable: '{tmp_path / 'nowhere'}'" in done.stdout
    assert "no such file" in done.stdout


def test_info_shows_the_tensorflow_found(other_tensorflow):
    cli = Path(sys.executable).parent / "juno-bridge"
    for env, version, folder in ((python_env(), tm.tf.__version__, INSTALLED.parent),
                                 (python_env(JUNO_BRIDGE_TENSORFLOW=str(other_tensorflow)), OTHER_RELEASE,
                                  other_tensorflow)):
        done = subprocess.run([str(cli), "info", "--json"], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        info = json.loads(done.stdout)["tensorflow"]
        assert info == {"version": version, "path": str((folder / "libtensorflow_cc.so.2").resolve())}
