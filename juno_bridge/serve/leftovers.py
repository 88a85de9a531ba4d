"""What a killed process leaves behind, and how the next one sweeps it.

Everything the Triton server side and the triton:// client create outside the process carries the PID of
the process that owns it in its name: model repositories ``<tmp>/juno-bridge-serve-<pid>-*`` and
``/dev/shm`` regions ``jbserve<pid>x<hex>_*`` (the server's python backend) and ``jb<pid>x<hex>_in|out``
(the client's). A process that dies by SIGKILL cannot remove them; the next server or client started on
the machine removes those whose owner no longer exists (never one of a live process, whoever owns it).

``spawn_tied`` starts a child (the tritonserver) that receives SIGKILL when this process ends, whatever
signal ended it (Linux ``PR_SET_PDEATHSIG``); the server's python backend stubs, its children, end on
their own when they see their parent gone.
"""
from __future__ import annotations

import concurrent.futures
import ctypes
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path

SHM_DIR = Path("/dev/shm")
WORKDIR_PREFIX = "juno-bridge-serve-"
_PR_SET_PDEATHSIG = 1
_OWNED = re.compile(r"^(?:jbserve|jb)(\d+)x[0-9a-f]+_")
_WORKDIR = re.compile(rf"^{re.escape(WORKDIR_PREFIX)}(\d+)-")
_libc = ctypes.CDLL(None, use_errno=True)  # resolved here: a preexec_fn must not load libraries after fork


def workdir_prefix() -> str:
    """mkdtemp prefix of this process's server directories."""
    return f"{WORKDIR_PREFIX}{os.getpid()}-"


def shm_name(kind: str) -> str:
    """A fresh region name owned by this process: kind ``jbserve`` (server prefix) or ``jb`` (client)."""
    return f"{kind}{os.getpid()}x{os.urandom(6).hex()}_"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def sweep(tmp: str | os.PathLike | None = None, shm: str | os.PathLike = SHM_DIR, workdirs: bool = True) -> list[str]:
    """Removes the /dev/shm regions and (``workdirs``) the model repositories of processes that no longer
    exist; returns the paths removed. Names without an owner PID (other programs, older releases) are
    never touched."""
    removed = []
    places = [(Path(shm), _OWNED)] + [(Path(tmp or tempfile.gettempdir()), _WORKDIR)] * workdirs
    for folder, pattern in places:
        try:
            entries = list(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            match = pattern.match(entry.name)
            if not match or alive(int(match.group(1))):
                continue
            try:
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
                removed.append(str(entry))
            except FileNotFoundError:  # swept by another process at the same moment
                pass
            except OSError:
                pass  # not ours to remove (permissions): left as it is
    return removed


def _die_with(parent: int):
    def preexec() -> None:
        if _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0 or os.getppid() != parent:
            os._exit(127)  # cannot be tied to its parent, or the parent is already gone: no orphan server
    return preexec


def spawn_tied(command: list[str], **popen_kwargs) -> subprocess.Popen:
    """``subprocess.Popen`` of a child that receives SIGKILL when this process ends, whatever signal ends it.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, so a child started from any thread
    but the main one is forked by one long-lived launcher thread (a daemon: it ends with the process)."""
    popen_kwargs["preexec_fn"] = _die_with(os.getpid())
    if threading.current_thread() is threading.main_thread():
        return subprocess.Popen(command, **popen_kwargs)
    done: concurrent.futures.Future = concurrent.futures.Future()
    _launcher().put((done, command, popen_kwargs))
    return done.result()


_launch_queue: queue.SimpleQueue | None = None
_launch_lock = threading.Lock()


def _launcher() -> queue.SimpleQueue:
    global _launch_queue
    with _launch_lock:
        if _launch_queue is None:
            _launch_queue = queue.SimpleQueue()
            threading.Thread(target=_launch_loop, args=(_launch_queue,), name="juno-bridge-launcher",
                             daemon=True).start()
    return _launch_queue


def _launch_loop(requests: queue.SimpleQueue) -> None:
    while True:
        done, command, popen_kwargs = requests.get()
        try:
            done.set_result(subprocess.Popen(command, **popen_kwargs))
        except BaseException as err:  # handed to the caller's thread
            done.set_exception(err)
