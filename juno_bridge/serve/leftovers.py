"""What a killed process leaves behind, and how the next one sweeps it.

Everything the Triton server side and the triton:// client create outside the process carries the PID of
the process that owns it in its name: model repositories ``<tmp>/juno-bridge-serve-<pid>-*`` and
``/dev/shm`` regions ``jbserve<pid>x<hex>_*`` (the server's python backend) and ``jb<pid>x<hex>_in|out``
(the client's). A process that dies by SIGKILL cannot remove them; the next server or client started on
the machine removes those whose owner no longer exists (never one of a live process, whoever owns it).
A PID alone cannot tell a dead owner from a live one in another PID namespace sharing /dev/shm (a
container): each owner also holds an flock on ``/dev/shm/jbowner<pid>x<hex>_lock`` while it lives, and
the sweep leaves the names of a PID whose lock is still held.

``spawn_tied`` starts a child (the tritonserver) that receives SIGKILL when this process ends, whatever
signal ended it (Linux ``PR_SET_PDEATHSIG``); the server's python backend stubs, its children, end on
their own when they see their parent gone.
"""
from __future__ import annotations

import atexit
import concurrent.futures
import ctypes
import fcntl
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
_OWNED = re.compile(r"^(?:jbserve|jbowner|jb)(\d+)x[0-9a-f]+_")
_WORKDIR = re.compile(rf"^{re.escape(WORKDIR_PREFIX)}(\d+)-")
_libc = ctypes.CDLL(None, use_errno=True)  # resolved here: a preexec_fn must not load libraries after fork


_owner: tuple[int, int] | None = None  # (pid, fd of the held owner lock)
_owner_lock = threading.Lock()


def claim(shm: str | os.PathLike = SHM_DIR) -> None:
    """Holds this process's owner lock (once per process; a forked child takes its own)."""
    global _owner
    with _owner_lock:
        if _owner is not None and _owner[0] == os.getpid():
            return
        try:
            path = Path(shm) / f"jbowner{os.getpid()}x{os.urandom(6).hex()}_lock"
            fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # no /dev/shm: the PID alone then tells the owner
            return
        _owner = (os.getpid(), fd)
        atexit.register(_release, os.getpid(), fd, path)


def _release(pid: int, fd: int, path: Path) -> None:
    """At a normal exit: the owner lock goes (a killed process's is swept with its other leftovers)."""
    if os.getpid() == pid:
        path.unlink(missing_ok=True)
        os.close(fd)


def workdir_prefix() -> str:
    """mkdtemp prefix of this process's server directories."""
    claim()
    return f"{WORKDIR_PREFIX}{os.getpid()}-"


def shm_name(kind: str) -> str:
    """A fresh region name owned by this process: kind ``jbserve`` (server prefix) or ``jb`` (client)."""
    claim()
    return f"{kind}{os.getpid()}x{os.urandom(6).hex()}_"


def _locked_elsewhere(pid: int, shm: Path) -> bool:
    """Whether an owner lock of ``pid`` is held: a live owner this PID namespace cannot see."""
    for lock in shm.glob(f"jbowner{pid}x*_lock"):
        try:
            fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            continue
        finally:
            os.close(fd)
    return False


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def owner_gone(name: str, shm: str | os.PathLike = SHM_DIR) -> bool:
    """Whether ``name`` (a region or folder name of ours) belongs to a process that no longer exists."""
    match = _OWNED.match(name) or _WORKDIR.match(name)
    return bool(match) and not alive(int(match.group(1))) and not _locked_elsewhere(int(match.group(1)), Path(shm))


def running(pid: int) -> bool:
    """A live process (a zombie is dead: it only waits for its parent to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    except OSError:
        return ""


def children(pid: int) -> list[int]:
    """The live child processes of ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid and running(int(entry.name)):
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


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
            if not pattern.match(entry.name) or not owner_gone(entry.name, shm):
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


def unregister_dead_clients(address: str, timeout: float = 2.0) -> list[str]:
    """Unregisters from the server at ``address`` the system shared memory regions of triton:// clients
    that no longer exist (killed: their names carry their PID), so the server unmaps them; returns them.
    A region still in use by a request is left for the next sweep."""
    import tritonclient.grpc as grpcclient

    done = []
    try:
        with grpcclient.InferenceServerClient(address) as client:
            status = client.get_system_shared_memory_status(as_json=True, client_timeout=timeout)
            for name in status.get("regions", {}):
                if owner_gone(name):
                    try:
                        client.unregister_system_shared_memory(name, client_timeout=timeout)
                        done.append(name)
                    except Exception:  # noqa: BLE001 - in use, or the server went: the next sweep
                        pass
    except Exception:  # noqa: BLE001 - a server that cannot answer has nothing to unregister now
        pass
    return done
