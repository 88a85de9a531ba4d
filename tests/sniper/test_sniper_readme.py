"""The README's SNiPER job script runs as written (on toy events in its working directory), and fails
with exit status 1 when the job fails."""
from __future__ import annotations

import shutil
import subprocess
import sys

from helpers.readme import blocks
from helpers.sniper_env import job_env


def test_the_readme_job_script_runs(events, tmp_path):
    script = next(b for b in blocks("SNiPER", "python") if "jbs.run(task)" in b)
    shutil.copy(events, tmp_path / "events.h5")
    (tmp_path / "job.py").write_text(script)
    done = subprocess.run([sys.executable, "job.py"], cwd=tmp_path, env=job_env(), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "events processed 12" in done.stdout + done.stderr

    (tmp_path / "events.h5").unlink()  # a misspelt or missing file: the job fails, and says so
    done = subprocess.run([sys.executable, "job.py"], cwd=tmp_path, env=job_env(), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "cannot open it as HDF5" in done.stdout + done.stderr and "JobError" in done.stderr
