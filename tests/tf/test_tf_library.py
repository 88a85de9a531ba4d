"""The tf plugin builds without TensorFlow and checks the library it binds: a library lacking a function
is refused by name, and TensorFlow's two libraries must come from one folder."""
import os
import shutil
import subprocess
from pathlib import Path

from helpers import tf_models as tm
from helpers.native_build import REPO, build
from helpers.tf_releases import python_env, run_python

import juno_bridge as jb
from juno_bridge import paths

# The functions a fake library exports: the first few the plugin needs, not all of them.
PRESENT = ["TF_Version", "TF_NewStatus", "TF_DeleteStatus", "TF_GetCode", "TF_Message"]
MISSING = ["TF_NewBuffer", "TF_DeleteBuffer", "TF_NewGraph", "TF_SessionRun", "TF_TensorData"]

OPEN_AND_PRINT_ERROR = """
import juno_bridge as jb
try:
    jb.Session(sys.argv[1], config={"tensorflow": sys.argv[2]} if sys.argv[2] else {})
    print("opened")
except jb.BackendUnavailableError as e:
    print(e)
"""


def test_library_lacking_functions_is_refused_by_name(tmp_path):
    source = tmp_path / "fake_tf.c"
    source.write_text("".join(f"void {name}(void) {{}}\n" for name in PRESENT))
    fake = tmp_path / "libtensorflow_cc.so.2"
    build(["gcc", "-shared", "-fPIC", source, "-o", fake])
    done = run_python(OPEN_AND_PRINT_ERROR, tm.tiny(), fake)
    assert f"'{fake}' is not a TensorFlow C API library juno-bridge can use: it lacks " in done.stdout
    lacking = done.stdout.split("it lacks ", 1)[1].split(" (juno-bridge needs", 1)[0].split(", ")
    assert set(MISSING) <= set(lacking) and not set(PRESENT) & set(lacking)
    assert len(lacking) == 26 - len(PRESENT)
    assert "TF_TensorDefaultAlignment" not in done.stdout  # optional: its absence is no reason to refuse


def test_plugin_builds_without_tensorflow_and_runs_the_other_release(tmp_path, other_tensorflow):
    """The recipe of the build: our declarations and the plugin's sources, only -ldl; no TensorFlow on
    any path of the compiler (the installed headers give juno_bridge/version.h, which CMake generates).
    The result loads through JUNO_BRIDGE_PLUGIN_PATH and runs a SavedModel."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    plugin = tmp_path / "libjuno_bridge_tf.so"
    sources = [*sorted((REPO / "cpp" / "plugins").rglob("tf_*.cpp")), REPO / "cpp" / "src" / "platform.cpp"]
    cmd = ["g++", "-std=c++17", "-O0", "-g0", "-fPIC", "-shared", "-fvisibility=hidden",
           *[f"-I{d}" for d in (REPO / "cpp" / "include", paths.include_dir(), REPO / "cpp" / "src",
                                REPO / "cpp" / "plugins", REPO / "third_party" / "tensorflow")],
           *sources, "-o", plugin, "-ldl", "-pthread"]
    done = subprocess.run([str(c) for c in cmd], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    needed = subprocess.run(["readelf", "-d", str(plugin)], capture_output=True, text=True).stdout
    assert "NEEDED" in needed and "tensorflow" not in needed
    code = """
import juno_bridge as jb, numpy as np
s = jb.Session(sys.argv[1])
x = jb.empty((2, 8), np.float32)
x[...] = 1.0
print(s.metadata()["custom"]["tensorflow_version"], s.run({"x": x})["y"].sum())
"""
    run = run_python(code, tm.tiny(), env=python_env(JUNO_BRIDGE_PLUGIN_PATH=str(tmp_path),
                                                    JUNO_BRIDGE_TENSORFLOW=str(other_tensorflow)))
    version, total = run.stdout.split()
    want = tm.affine_module().serve(tm.tf.constant(1.0, shape=(2, 8)))["y"].numpy().sum()
    assert version == "2.20.0" and abs(float(total) - float(want)) < 1e-4


def test_framework_library_from_another_folder_is_refused(tmp_path, other_tensorflow):
    """LD_LIBRARY_PATH comes before libtensorflow_cc.so.2's run path, so its framework library can come
    from elsewhere: a copy of the same release's is refused by folder; another release's fails to load
    with the loader's message. Neither runs."""
    framework = "libtensorflow_framework.so.2"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    try:
        os.link(other_tensorflow / framework, elsewhere / framework)
    except OSError:
        shutil.copy(other_tensorflow / framework, elsewhere / framework)
    done = run_python(OPEN_AND_PRINT_ERROR, tm.tiny(), other_tensorflow,
                      env=python_env(LD_LIBRARY_PATH=str(elsewhere)))
    assert "TensorFlow's two libraries come from different folders: " \
           f"{(other_tensorflow / 'libtensorflow_cc.so.2').resolve()} and {elsewhere / framework}" in done.stdout

    installed = Path(tm.tf.__file__).parent
    done = run_python(OPEN_AND_PRINT_ERROR, tm.tiny(), installed, env=python_env(LD_LIBRARY_PATH=str(other_tensorflow)))
    assert f"cannot load '{installed / 'libtensorflow_cc.so.2'}'" in done.stdout and "undefined symbol" in done.stdout


def test_no_tensorflow_found_says_where_it_looked_and_how_to_name_one(tmp_path):
    # The installed plugin, copied where no tensorflow package lies beside it: nothing to find.
    lib = tmp_path / "site" / "juno_bridge" / "lib"
    lib.mkdir(parents=True)
    shutil.copy(Path(jb.__file__).parent / "lib" / "libjuno_bridge_tf.so", lib)
    done = run_python(OPEN_AND_PRINT_ERROR, tm.tiny(), "", env=python_env(JUNO_BRIDGE_PLUGIN_PATH=str(lib)))
    assert "no TensorFlow found: install it beside juno-bridge" in done.stdout
    assert "config={'tensorflow': PATH}" in done.stdout and "JUNO_BRIDGE_TENSORFLOW" in done.stdout
    assert f"'{lib}/../../tensorflow/libtensorflow_cc.so.2': no such file" in done.stdout
    assert "cannot load 'libtensorflow_cc.so.2'" in done.stdout
