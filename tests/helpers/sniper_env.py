"""What the SNiPER tests (tests/sniper/) share."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

import juno_bridge

HERE = Path(__file__).resolve().parents[1] / "sniper"  # the tests, their example package and probe
PREFIX = os.environ.get("SNIPER_PREFIX", "")
LIBRARY = Path(juno_bridge.__file__).parent / "lib" / "libJunoBridgeSniper.so"


def skip_reason() -> str | None:
    if not PREFIX:
        return "SNIPER_PREFIX is not set: the SNiPER tests need an installed SNiPER (see README, SNiPER)"
    if not (Path(PREFIX) / "python" / "Sniper").is_dir():
        return f"SNIPER_PREFIX={PREFIX} holds no SNiPER Python package (python/Sniper)"
    if not LIBRARY.exists():
        return f"{LIBRARY} is missing: run `make sniper SNIPER_PREFIX={PREFIX}`"
    return None


def job_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [f"{PREFIX}/python", str(HERE), env.get("PYTHONPATH", "")]))
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [f"{PREFIX}/lib", env.get("LD_LIBRARY_PATH", "")]))
    env["PATH"] = os.pathsep.join([f"{PREFIX}/bin", env.get("PATH", "")])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def plain_session(model: str, dense: np.ndarray) -> dict:
    """The model in plain Python, one event per call and one thread, as JunoBridgeAlg runs it."""
    s = juno_bridge.Session(model, intra_op_threads=1)
    event = juno_bridge.empty((1, *dense.shape[1:]), np.float32)  # aligned, as the store's tensors are
    rows = []
    for i in range(len(dense)):
        event[...] = dense[i:i + 1]
        rows.append({k: np.array(v) for k, v in s.run({"pmt": event}).items()})
    return {name: np.concatenate([r[name] for r in rows]) for name in rows[0]}
