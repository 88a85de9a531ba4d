"""Helpers for the Triton tests: servers started by the project's own serve code, and /dev/shm checks."""
from __future__ import annotations

import os
import signal
from pathlib import Path

from .optional import require

require("triton")  # a module-level skip (or failure under JUNO_BRIDGE_REQUIRE_ALL=1) for its importers

from juno_bridge.demo.models.builtin import builtin_model  # noqa: E402
from juno_bridge.serve import TritonServer  # noqa: E402


def shm_entries() -> set[str]:
    """/dev/shm's names, less this process's own owner lock (held while it lives, removed at its exit)."""
    own = f"jbowner{os.getpid()}x"
    return {p.name for p in Path("/dev/shm").iterdir() if not p.name.startswith(own)}


def client_regions() -> set[str]:
    """The client's shared memory regions (juno_bridge/remote.py names them jb<hex>_in/out)."""
    return {n for n in shm_entries() if n.startswith("jb") and n.endswith(("_in", "_out"))
            and not n.startswith("jbserve")}


def tiny_server(**kwargs) -> TritonServer:
    return TritonServer([str(builtin_model("tiny"))], names=["tiny"], **kwargs).start()


def stub_pids(server: TritonServer) -> list[int]:
    """The python backend stub processes of ``server`` (its process group)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != server.process.pid:
                continue
            if "triton_python_backend_stub" in (entry / "cmdline").read_text():
                pids.append(int(entry.name))
        except (OSError, ProcessLookupError):
            continue
    return pids


def kill(pid: int, sig=signal.SIGKILL) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
