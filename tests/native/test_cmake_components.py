"""find_package(juno_bridge CONFIG [COMPONENTS ...]): the one CMake package and its components, as a
project configures against the installed package. The sniper component itself is built and used in
tests/sniper (it needs SNiPER); here, what a project meets where it is not built."""
from __future__ import annotations

import json
import subprocess
import textwrap

import pytest

from helpers.optional import require_tool
from juno_bridge import paths


def configure(tmp_path, find_package: str) -> subprocess.CompletedProcess:
    require_tool("cmake")
    (tmp_path / "CMakeLists.txt").write_text(textwrap.dedent(f"""\
        cmake_minimum_required(VERSION 3.18)
        project(probe LANGUAGES NONE)
        {find_package}
        message(STATUS "juno_bridge_FOUND=${{juno_bridge_FOUND}} sniper=${{juno_bridge_sniper_FOUND}}")
        message(STATUS "DEFAULT_MODEL=${{juno_bridge_DEFAULT_MODEL}}")
    """))
    return subprocess.run(["cmake", "-S", str(tmp_path), "-B", str(tmp_path / "build"),
                           f"-Djuno_bridge_DIR={paths.cmake_dir()}"], capture_output=True, text=True)


def test_the_package_without_components_is_found_with_the_default_model(tmp_path):
    done = configure(tmp_path, "find_package(juno_bridge CONFIG REQUIRED)")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "juno_bridge_FOUND=1" in done.stdout
    model = next(line for line in done.stdout.splitlines() if "DEFAULT_MODEL=" in line).split("=", 1)[1]
    assert model.endswith("default.onnx") and (paths.PACKAGE_DIR / "demo" / "models" / "default.onnx").samefile(model)


def test_an_unknown_component_is_named(tmp_path):
    done = configure(tmp_path, "find_package(juno_bridge CONFIG REQUIRED COMPONENTS tensorflow)")
    assert done.returncode != 0
    assert "juno_bridge has no component 'tensorflow' (it has: sniper)" in done.stderr, done.stderr


def test_the_sniper_component_where_it_is_not_built(tmp_path):
    if (paths.lib_dir() / "libJunoBridgeSniper.so").exists():
        pytest.skip("the sniper component is built here: tests/sniper/test_sniper_example.py uses it")
    done = configure(tmp_path, "find_package(juno_bridge CONFIG REQUIRED COMPONENTS sniper)")
    assert done.returncode != 0
    assert "the sniper component is not built in this installation" in done.stderr, done.stderr
    assert "make sniper SNIPER_PREFIX=" in done.stderr
    # optional: the package is found, the component reported missing
    done = configure(tmp_path, "find_package(juno_bridge CONFIG REQUIRED OPTIONAL_COMPONENTS sniper)")
    assert done.returncode == 0, done.stderr
    assert "juno_bridge_FOUND=1 sniper=FALSE" in done.stdout


def test_config_and_info_name_the_components(capsys):
    from juno_bridge import cli

    assert cli.main(["config", "--examples-dir"]) == 0
    assert capsys.readouterr().out.strip() == str(paths.examples_dir())
    assert cli.main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert set(info["cmake components"]) == {"sniper"}
    built = (paths.lib_dir() / "libJunoBridgeSniper.so").exists()
    assert info["cmake components"]["sniper"].startswith("built" if built else "not built (make sniper")
