"""What the ROOT-input tests share: `juno-bridge run` failing on a file, as its user sees it."""
from __future__ import annotations

from pathlib import Path

from juno_bridge.cli import main


def error_of(tmp_path: Path, capsys, model, source: Path, *extra) -> str:
    """The one stderr line of a `run` of ``model`` on ``source`` that fails (exit 1, no traceback), with no
    output and no temporary of it left."""
    assert main(["run", str(model), "-i", str(source), "-o", str(tmp_path / "out.root"), "-q", *extra]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and captured.err.count("\n") == 1, captured.err
    assert not (tmp_path / "out.root").exists() and not list(tmp_path.glob(".out.root*"))
    return captured.err
