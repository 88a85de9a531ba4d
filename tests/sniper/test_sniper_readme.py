"""The README's SNiPER job script and JSON job run as written (on toy events in their working directory),
and fail with a non-zero exit status when the job fails."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

from helpers.readme import blocks
from helpers.sniper_env import job_env
from juno_bridge import paths


def test_the_readme_job_script_runs_and_reads_the_results_back(events, tmp_path):
    script = next(b for b in blocks("SNiPER", "python") if "jbs.run(task)" in b)
    shutil.copy(events, tmp_path / "events.h5")
    (tmp_path / "job.py").write_text(script)
    done = subprocess.run([sys.executable, "job.py"], cwd=tmp_path, env=job_env(), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "events processed 12" in done.stdout + done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("12 events; above 1 MeV, energy resolution "))
    energy, vertex = float(line.split()[7].rstrip(",")), float(line.split()[-2])
    assert 0 < energy < 0.1 and 0 < vertex < 0.3, line  # the default model: a few %, a few cm

    (tmp_path / "events.h5").unlink()  # a misspelt or missing file: the job fails, and says so
    done = subprocess.run([sys.executable, "job.py"], cwd=tmp_path, env=job_env(), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "cannot open it as HDF5" in done.stdout + done.stderr and "JobError" in done.stderr


def test_the_readme_json_job_runs(events, tmp_path):
    text = next(b for b in blocks("SNiPER", "json"))
    job = json.loads(text.replace("<juno_bridge>", str(paths.PACKAGE_DIR)))
    shutil.copy(events, tmp_path / "events.h5")
    (tmp_path / "job.json").write_text(json.dumps(job))
    done = subprocess.run(["sniper.exe", "job.json"], cwd=tmp_path, env=job_env(), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "events processed 12" in done.stdout + done.stderr
    (tmp_path / "events.h5").unlink()
    done = subprocess.run(["sniper.exe", "job.json"], cwd=tmp_path, env=job_env(), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode != 0 and "cannot open it as HDF5" in done.stdout + done.stderr
