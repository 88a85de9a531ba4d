"""SNiPER tests: jobs run in subprocesses against the SNiPER installed in $SNIPER_PREFIX (built beside the
project, never in it) and the package built by `make sniper`. Without SNIPER_PREFIX every test here is
skipped, saying why (CI has no SNiPER)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers.sniper_env import HERE, PREFIX, job_env, skip_reason


def pytest_report_header(config):
    reason = skip_reason()
    return f"sniper: {reason}" if reason else f"sniper: SNiPER at {PREFIX}"


def pytest_collection_modifyitems(config, items):
    reason = skip_reason()
    if reason:
        print(f"\ntests/sniper skipped: {reason}", file=sys.stderr)
        for item in items:
            if HERE in Path(str(item.fspath)).resolve().parents:
                item.add_marker(pytest.mark.skip(reason=reason))


PRELUDE = '''
import json, sys, threading, time
import numpy as np
import Sniper
import juno_bridge.sniper as jbs

class Collector(Sniper.PyAlgBase):
    """Copies the named store tensors every event (for comparing with plain Python afterwards)."""
    def __init__(self, name, keys):
        super().__init__(name)
        self.keys, self.rows = keys, {k: [] for k in keys}
    def initialize(self):
        self.store = jbs.store(self)
        return True
    def execute(self):
        for k in self.keys:
            self.rows[k].append(np.array(self.store[k]))
        return True
    def finalize(self):
        return True
    def stacked(self):
        return {k: np.concatenate(v) for k, v in self.rows.items()}

def emit(**result):
    print("RESULT " + json.dumps(result), flush=True)
'''


class Job:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.rc, self.output = proc.returncode, proc.stdout + proc.stderr
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        self.result = json.loads(lines[-1][7:]) if lines else None

    def __repr__(self):
        return f"<Job rc={self.rc}>\n{self.output[-4000:]}"


@pytest.fixture
def run_job(tmp_path):
    """run_job(code): the prelude + code as a Python job script in a fresh process; a Job back."""

    def run(code: str, timeout: float = 600) -> Job:
        script = tmp_path / "job.py"
        script.write_text(PRELUDE + textwrap.dedent(code))
        return Job(subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=job_env(), capture_output=True,
                                  text=True, timeout=timeout))

    return run


@pytest.fixture(scope="session")
def events(tmp_path_factory):
    """A sparse-hits file of 12 toy events (written with h5py here, never inside a SNiPER process)."""
    path = tmp_path_factory.mktemp("sniper-events") / "events.h5"
    subprocess.run([str(Path(sys.executable).parent / "juno-bridge"), "toymc", "--events", "12", "--seed", "7",
                    "--out", str(path)], check=True, capture_output=True)
    return path


@pytest.fixture(scope="session")
def dense_events(events):
    from juno_bridge.hits_file import DenseEvents

    return DenseEvents(events)[:]


def _default_models():
    try:  # the layout moves the demo models under juno_bridge.demo
        from juno_bridge.demo.models import default, default_algorithm
    except ImportError:
        from juno_bridge.models import default, default_algorithm
    return default, default_algorithm


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """The project's default model (pmt [B, 2, 17612] -> vertex [B, 3], energy [B]) through every backend."""
    default, default_algorithm = _default_models()
    out = {"onnx": str(default.onnx_model()), "python": default_algorithm.MODEL}
    cache = tmp_path_factory.mktemp("sniper-models")
    try:
        pt2, pt, _ = default.torch_models(cache)
        out["pt2"], out["pt"] = str(pt2), str(pt)
    except Exception as err:  # noqa: BLE001  (reported by the tests that need them)
        out["torch_error"] = str(err)
    out["savedmodel"] = str(cache / "energy.savedmodel")
    code = textwrap.dedent(f'''
        import tensorflow as tf
        class Energy(tf.Module):
            @tf.function(input_signature=[tf.TensorSpec([None, 2, 17612], tf.float32, name="pmt")])
            def serve(self, pmt):
                return {{"energy": tf.reduce_sum(pmt[:, 0, :], axis=1) / 1345.0}}
        m = Energy()
        tf.saved_model.save(m, {out["savedmodel"]!r}, signatures={{"serving_default": m.serve}})
    ''')
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    if proc.returncode != 0:
        out["savedmodel_error"] = proc.stderr[-2000:]
    return out
