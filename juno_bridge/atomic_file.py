"""Files that appear whole or not at all: written under a temporary name in the same folder (hidden, carrying
the writer's PID), fsynced, renamed over the final name, and the folder fsynced, so a file under its final
name is complete even after a crash. Used by every writer of `juno-bridge run` outputs and event files."""
from __future__ import annotations

import errno
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from juno_bridge.errors import RunError

TMP_MARK = ".tmp"


def temporary_name(path: Path) -> Path:
    """The temporary a writer uses beside ``path``: hidden, and carrying the writer's PID (for the sweep)."""
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")


@contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yields the temporary to write; when the block ends, makes it durable and renames it to ``path``. A
    full disk, a read-only or unwritable folder is a RunError naming the file; nothing is left behind."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        with open(tmp, "r+b") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as err:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise RunError(f"cannot write output file '{path}': {reason(err)}") from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def reason(err: OSError) -> str:
    """``No space left on device (ENOSPC)``: what the system said, once."""
    if not err.errno:
        return str(err)
    return f"{os.strerror(err.errno)} ({errno.errorcode.get(err.errno, err.errno)})"


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sweep_temporaries(directory: str | os.PathLike) -> list[str]:
    """Removes the temporaries of writers that no longer exist (killed mid-write); returns their names."""
    from juno_bridge.serve.leftovers import alive

    removed = []
    for entry in Path(directory).glob(f".*{TMP_MARK}*"):
        pid = entry.name.rsplit(TMP_MARK, 1)[1]
        if pid.isdigit() and not alive(int(pid)):
            entry.unlink(missing_ok=True)
            removed.append(entry.name)
    return removed
