"""juno_bridge.serve.leftovers on real processes: a tied child dies with its parent even by SIGKILL, and
the sweep removes exactly what dead owners left (never a live process's, never a name without an owner)."""
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from juno_bridge.serve import leftovers


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    assert not leftovers.alive(child.pid)
    return child.pid


def gone(pid: int, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


PARENT = textwrap.dedent("""
    import sys, threading
    from juno_bridge.serve.leftovers import spawn_tied
    holder = []
    if sys.argv[1] == "thread":  # started from a thread that ends at once
        t = threading.Thread(target=lambda: holder.append(spawn_tied(["sleep", "300"])))
        t.start(); t.join()
    else:
        holder.append(spawn_tied(["sleep", "300"]))
    print(holder[0].pid, flush=True)
    threading.Event().wait()
""")


def test_a_tied_child_dies_when_its_parent_is_sigkilled_from_main_thread_or_any_thread(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    for where in ("main", "thread"):
        parent = subprocess.Popen([sys.executable, str(script), where], stdout=subprocess.PIPE, text=True)
        child = int(parent.stdout.readline())
        time.sleep(0.3)
        assert not gone(child, 0), f"{where}: the child died with the thread that started it"
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert gone(child), f"{where}: sleep {child} outlived its SIGKILLed parent"


def test_the_sweep_removes_only_what_dead_owners_left(tmp_path):
    tmp, shm = tmp_path / "tmp", tmp_path / "shm"
    tmp.mkdir()
    shm.mkdir()
    dead, live = dead_pid(), os.getpid()
    (tmp / f"juno-bridge-serve-{dead}-abc").mkdir()
    (tmp / f"juno-bridge-serve-{dead}-abc" / "models").mkdir()
    (tmp / f"juno-bridge-serve-{live}-def").mkdir()
    (tmp / "juno-bridge-serve-abcdef").mkdir()  # an older release's name: no owner, never touched
    for name in (f"jbserve{dead}x00aa_region", f"jb{dead}x11bb_in", f"jb{live}x22cc_out", "jb0123abcd_in", "other"):
        (shm / name).write_bytes(b"x")
    removed = leftovers.sweep(tmp, shm)
    assert sorted(Path(p).name for p in removed) == sorted(
        [f"juno-bridge-serve-{dead}-abc", f"jbserve{dead}x00aa_region", f"jb{dead}x11bb_in"])
    assert sorted(p.name for p in tmp.iterdir()) == sorted([f"juno-bridge-serve-{live}-def",
                                                            "juno-bridge-serve-abcdef"])
    assert sorted(p.name for p in shm.iterdir()) == sorted([f"jb{live}x22cc_out", "jb0123abcd_in", "other"])
    assert leftovers.sweep(tmp, shm, workdirs=False) == []


def test_names_carry_the_owner_pid():
    assert leftovers.shm_name("jbserve").startswith(f"jbserve{os.getpid()}x")
    assert leftovers.workdir_prefix() == f"juno-bridge-serve-{os.getpid()}-"


def test_a_pid_whose_owner_lock_is_held_is_never_swept(tmp_path):
    """A live owner in another PID namespace looks dead by its PID; its held owner lock keeps its names."""
    shm = tmp_path / "shm"
    shm.mkdir()
    pid = dead_pid()
    lock = shm / f"jbowner{pid}x0a0b_lock"
    region = shm / f"jb{pid}x0c0d_in"
    region.write_bytes(b"x")
    fd = os.open(lock, os.O_CREAT | os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another open file description: the sweep's flock conflicts with it
    try:
        assert leftovers.sweep(tmp_path, shm) == []
        assert region.exists() and lock.exists()
    finally:
        os.close(fd)
    assert sorted(Path(p).name for p in leftovers.sweep(tmp_path, shm)) == sorted([lock.name, region.name])


def test_this_process_holds_its_owner_lock():
    leftovers.shm_name("jb")
    (lock,) = Path("/dev/shm").glob(f"jbowner{os.getpid()}x*_lock")
    fd = os.open(lock, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = False
        except BlockingIOError:
            held = True
        assert held
    finally:
        os.close(fd)
