"""Fixtures shared by the remote tests (Dask and file-runner subprocesses)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import juno_bridge as jb

TESTS = Path(__file__).resolve().parents[1]  # holds helpers/, with the tests' algorithms


@pytest.fixture
def worker_path(monkeypatch):
    """Worker processes and subprocesses import the tests' algorithms (and an in-place build) through
    PYTHONPATH."""
    package_parent = str(Path(jb.__file__).resolve().parent.parent)
    parts = [str(TESTS), package_parent, os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in parts if p))
