"""The core, the Cython module and the python plugin stay in files of one job each: none grows past about
350 lines (a file that does must be split by responsibility, as session.cpp, ort_backend.cpp, _core.pyx and
python_backend.cpp were)."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 360
AREAS = [("cpp/src", ("*.cpp", "*.hpp")), ("bridge", ("*.pyx", "*.pxi", "*.hpp")),
         ("cpp/plugins/python", ("*.cpp", "*.hpp"))]
FILES = sorted(p for area, patterns in AREAS for pattern in patterns for p in (ROOT / area).glob(pattern))


def test_the_areas_hold_sources():
    assert len(FILES) > 30, FILES


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_file_holds_several_jobs(path):
    lines = path.read_text().count("\n")
    assert lines <= LIMIT, f"{path.relative_to(ROOT)} has {lines} lines (at most {LIMIT}): split it by job"
