"""`.ci/lint` (CI runs it after the tests): ruff on the Python files and clang-format on the C/C++ lines changed
since the commit that brought .clang-format in, checked in a scratch repository made of the project's own lint
files; and the project itself passes it."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from helpers.native_build import REPO
from helpers.optional import require_tool, unavailable

VENV_BIN = Path(sys.executable).parent  # where `make install` puts ruff and clang-format (the lint extra)
OLD_LINE = "int  old_layout( ){return 0;}"  # there before the style: it keeps its layout


def lint_tools() -> None:
    for name in ("ruff", "clang-format", "git-clang-format"):
        if not (VENV_BIN / name).exists():
            unavailable(f"{name} is not installed beside {sys.executable} (pip extra 'lint')")


def git(repo: Path, *args: str) -> None:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def lint(repo: Path, *args: str, path: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", ".ci/lint", *args], cwd=repo, capture_output=True, text=True,
                          env=dict(os.environ, PATH=path))


def scratch_repository(tmp_path: Path) -> Path:
    """A repository whose first commit has a C++ file in a layout of its own, the second the project's lint
    files, the third a badly laid out line in that file, a new C++ file and a Python file with an unused import."""
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    git(repo, "init", "-q")
    (repo / "src" / "old.cpp").write_text(f"{OLD_LINE}\n\nint kept() {{ return 1; }}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "before the style")
    for name in (".ci/lint", ".clang-format", "pyproject.toml"):
        (repo / name).parent.mkdir(exist_ok=True)
        shutil.copy(REPO / name, repo / name)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "the style")
    (repo / "src" / "old.cpp").write_text(f"{OLD_LINE}\n\nint  kept( ) {{return 1;}}\n")
    (repo / "src" / "new.cpp").write_text("int f(int x)\n{\n  if(x) return 2;\n  return 0;\n}\n")
    (repo / "src" / "tool.py").write_text("import os\nimport sys\n\nprint(sys.argv)\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "changes")
    return repo


def test_changed_lines_and_files_are_checked_and_fixed(tmp_path):
    lint_tools()
    require_tool("git")
    repo = scratch_repository(tmp_path)
    path = os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")])
    done = lint(repo, path=path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "F401" in done.stdout and "src/tool.py" in done.stdout  # ruff: the unused import
    assert "+int kept() { return 1; }" in done.stdout and "+int f(int x) {" in done.stdout  # clang-format
    # A line nobody changed since the style came in is at most context, never reformatted.
    assert not [line for line in done.stdout.splitlines() if line.startswith(("+", "-")) and "old_layout" in line]
    assert "bash .ci/lint --fix" in done.stdout

    fixed = lint(repo, "--fix", path=path)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert (repo / "src" / "old.cpp").read_text() == f"{OLD_LINE}\n\nint kept() {{ return 1; }}\n"
    assert (repo / "src" / "tool.py").read_text() == "import sys\n\nprint(sys.argv)\n"
    again = lint(repo, path=path)
    assert again.returncode == 0 and again.stdout.rstrip().endswith("lint: ok"), again.stdout + again.stderr


def test_missing_tools_are_said_and_skipped(tmp_path):
    require_tool("git")
    repo = scratch_repository(tmp_path)
    # PATH without a folder that has any of the tools (nor the script's folder: .venv/bin is not in the scratch repo)
    tools = ("ruff", "clang-format", "git-clang-format")
    path = os.pathsep.join(d for d in os.environ.get("PATH", "").split(os.pathsep)
                           if d and not any((Path(d) / t).exists() for t in tools))
    done = lint(repo, path=path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ruff is not installed (pip install '.[lint]'): Python not checked" in done.stdout
    assert "clang-format (with git-clang-format) is not installed" in done.stdout
    assert done.stdout.rstrip().endswith("lint: ok")


def test_the_project_passes_its_lint():
    lint_tools()
    done = subprocess.run(["bash", str(REPO / ".ci" / "lint")], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, PATH=os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")])))
    assert done.returncode == 0, done.stdout + done.stderr
