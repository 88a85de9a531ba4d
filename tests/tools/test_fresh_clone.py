"""What a user's fresh clone has: the repository stands alone (nothing reads a folder beside it), and a
source checkout imported by mistake says so in one line instead of a bare ModuleNotFoundError."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def tracked_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [REPO / name for name in listed.decode().split("\0") if name]


def test_nothing_in_the_repository_reads_a_folder_beside_it():
    # The project's reference material lives beside clones that developers make, never in a user's: a
    # test, build step or docstring that names it fails on a fresh clone. (The words are split here so
    # that this file does not name it either.)
    beside = ("../" + "shared", '"' + "shared" + '" / "reference"', "shared/" + "reference")
    offenders = []
    for path in tracked_files():
        if not path.is_file() or path.suffix in {".onnx", ".npz", ".png"}:
            continue
        text = path.read_text(errors="replace")
        offenders += [f"{path.relative_to(REPO)}: {word}" for word in beside if word in text]
    assert not offenders, offenders


def test_a_source_checkout_without_compiled_modules_says_where_it_was_imported_from(tmp_path):
    checkout = tmp_path / "checkout"
    shutil.copytree(REPO / "juno_bridge", checkout / "juno_bridge",
                    ignore=shutil.ignore_patterns("*.so", "lib", "bin", "include", "cmake", "examples", "__pycache__"))
    # As a SNiPER setup.sh or a job in the checkout's folder puts it: first on the path.
    result = subprocess.run([sys.executable, "-c", "import juno_bridge"], cwd=checkout, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(checkout)})
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: juno_bridge was imported from ") and str(checkout / "juno_bridge") in last
    assert "source checkout without its compiled modules" in last and "PYTHONPATH" in last, last
