"""Files that appear whole or not at all: written under a fresh temporary name in the same folder, checked,
fsynced, read back, renamed over the final name, and the folder fsynced, so a file under its final name is
complete even after a crash or a full disk. Used by every writer of `juno-bridge run` outputs and event files.

The temporary is made by ``tempfile.mkstemp`` (O_CREAT|O_EXCL, a random part: a link planted in the folder
is never followed) and named ``.<name>.tmp<pid>@<host>-<random>``, so a later run can tell the leftovers of a
writer that died (``sweep_temporaries``). Writers get the open file, never the name to open again; the rename
replaces a link at the final name rather than following it; an output folder that is itself a symbolic link
is refused unless asked for.
"""
from __future__ import annotations

import errno
import glob
import io
import os
import re
import shutil
import socket
import stat
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from juno_bridge.errors import InvalidArgumentError, RunError

TMP_MARK = ".tmp"
FOREIGN_AGE_S = 24 * 3600  # a temporary of another host untouched this long has no live writer
# .<name>.tmp<pid>@<host>-<mkstemp's 8 characters>, or an older release's .<name>.tmp<pid>
_TEMPORARY = re.compile(rf"^\..+{re.escape(TMP_MARK)}(\d+)(?:@(.+)-[a-z0-9_]{{8}})?$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "localhost"


def temporary_prefix(path: Path) -> str:
    """The start of the temporary names a writer of ``path`` uses: hidden, with its PID and host (for the
    sweep)."""
    return f".{path.name}{TMP_MARK}{os.getpid()}@{_host()}-"


class Temporary:
    """The temporary a block of ``replacing`` writes: ``file()`` (a buffered binary file, for numpy and
    uproot) or ``latched()`` (for h5py), both on the one descriptor made by mkstemp."""

    def __init__(self, path: Path, fd: int):
        self.path, self.fd = path, fd
        self._latched: LatchedFile | None = None

    def file(self) -> io.BufferedRandom:
        """The temporary as a file object (closing it leaves the descriptor open); its errors raise."""
        return os.fdopen(self.fd, "w+b", closefd=False)

    def latched(self) -> "LatchedFile":
        """The temporary for a writer that swallows write errors or cannot survive them (h5py: a failed write
        at close leaves the HDF5 library with a file it cannot close, and the process crashes at exit)."""
        self._latched = LatchedFile(self.fd)
        return self._latched

    def reader(self) -> io.BufferedReader:
        """What was written, from the start, through a descriptor of its own (to read it back)."""
        return os.fdopen(os.dup(self.fd), "rb")

    def error(self) -> OSError | None:
        """The first error a latched writer met, if any."""
        return None if self._latched is None else self._latched.error

    def check(self) -> None:
        if (error := self.error()) is not None:
            raise error


class LatchedFile(io.RawIOBase):
    """A file on a descriptor whose writes never fail to the writer: the first error is kept (``error``) and
    later writes are dropped; the owner raises it once the writer has closed. For h5py's file-object driver
    (read, write, seek, tell, truncate, flush)."""

    def __init__(self, fd: int):
        super().__init__()
        self.fd, self.pos, self.error = fd, 0, None

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.pos, os.SEEK_END: os.fstat(self.fd).st_size}[whence]
        self.pos = base + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buffer) -> int:
        n = os.preadv(self.fd, [buffer], self.pos)
        self.pos += n
        return n

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        done = 0
        while self.error is None and done < len(view):
            try:
                done += os.pwrite(self.fd, view[done:], self.pos + done)
            except OSError as err:
                self.error = err
        self.pos += len(view)
        return len(view)

    def truncate(self, size: int | None = None) -> int:
        size = self.pos if size is None else size
        if self.error is None:
            try:
                os.ftruncate(self.fd, size)
            except OSError as err:
                self.error = err
        return size

    def flush(self) -> None:
        pass


def check_folder(folder: Path, allow_symlink: bool = False) -> None:
    """An output folder that is a symbolic link is refused unless ``allow_symlink``: a link planted where the
    outputs go would send them elsewhere."""
    if folder.is_symlink() and not allow_symlink:
        raise InvalidArgumentError(f"output folder '{folder}' is a symbolic link (to '{os.readlink(folder)}'); "
                                   "write into the folder itself, or allow it (--allow-symlinked-output)")


def check_writable(path: str | os.PathLike) -> None:
    """Fails now, as the write itself would at the end, where ``path`` cannot be created: its folder is
    missing, read-only or not ours (a file made and removed there, never under a name of its own)."""
    try:
        with tempfile.TemporaryFile(dir=Path(path).parent):
            pass
    except OSError as err:
        raise RunError(f"cannot write output file '{path}': {reason(err)}") from err


@contextmanager
def replacing(path: str | os.PathLike, verify: Callable[[Temporary], None] | None = None,
              allow_symlinked_folder: bool = False) -> Iterator[Temporary]:
    """Yields the fresh temporary to write; when the block ends: the latched error (if any) raised, the
    temporary fsynced, ``verify(tmp)`` (reads back what matters; raises RunError or OSError), checked to be
    still the file made here, renamed to ``path`` and the folder fsynced. A full disk, a read-only or
    unwritable folder is a RunError naming the file; nothing is left behind."""
    path = Path(path)
    check_folder(path.parent, allow_symlinked_folder)
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path))
    except OSError as err:
        raise RunError(f"cannot write output file '{path}': {reason(err)}") from err
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 is for the temporary; the file gets the usual mode
    except OSError:
        pass
    tmp = Temporary(Path(name), fd)
    try:
        yield tmp
        tmp.check()
        os.fsync(fd)
        if verify is not None:
            verify(tmp)
        made, there = os.fstat(fd), os.lstat(tmp.path)
        if (made.st_dev, made.st_ino) != (there.st_dev, there.st_ino) or not stat.S_ISREG(there.st_mode):
            raise RunError(f"cannot write output file '{path}': its temporary '{tmp.path}' was replaced while "
                           "it was written")
        os.replace(tmp.path, path)  # a link at `path` is replaced, not followed
        fsync_dir(path.parent)
    except OSError as err:
        _remove(tmp)
        raise RunError(f"cannot write output file '{path}': {reason(tmp.error() or err)}") from err
    except BaseException as err:
        _remove(tmp)
        if isinstance(err, Exception) and tmp.error() is not None:  # a writer lost after a dropped write
            raise RunError(f"cannot write output file '{path}': {reason(tmp.error())}") from err
        raise
    finally:
        os.close(fd)


def _umask() -> int:
    """This process's umask, read without setting it (os.umask sets it, a race with other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def _remove(tmp: Temporary) -> None:
    """The temporary goes, unless something else now stands under its name."""
    try:
        there = os.lstat(tmp.path)
        made = os.fstat(tmp.fd)
        if (made.st_dev, made.st_ino) == (there.st_dev, there.st_ino):
            tmp.path.unlink()
    except OSError:
        pass


def reason(err: OSError) -> str:
    """``No space left on device (ENOSPC)``: what the system said, once."""
    if not err.errno:
        return " ".join(str(err).split())
    return f"{os.strerror(err.errno)} ({errno.errorcode.get(err.errno, err.errno)})"


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sweep_temporaries(directory: str | os.PathLike, name: str | None = None) -> list[str]:
    """Removes the temporaries (of the file ``name``, else of any file) that writers which no longer exist
    left in ``directory`` (killed mid-write); returns their names. A temporary of this host is a dead
    writer's when its PID is not alive; one of another host (a folder shared by a cluster) when nobody has
    touched it for a day. Regular files only, named as ours: nothing else is touched."""
    from juno_bridge.serve.leftovers import alive

    removed = []
    pattern = f".{glob.escape(name)}{TMP_MARK}*" if name else f".*{TMP_MARK}*"
    try:
        entries = list(Path(directory).glob(pattern))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if not match:
            continue
        try:
            info = entry.lstat()
            if not stat.S_ISREG(info.st_mode):
                continue
            host = match.group(2)
            if host is None or host == _host():
                dead = not alive(int(match.group(1)))
            else:
                dead = time.time() - info.st_mtime > FOREIGN_AGE_S
            if dead:
                entry.unlink()
                removed.append(entry.name)
        except OSError:  # gone meanwhile (another sweep), or not ours to remove
            pass
    return removed


@contextmanager
def staged(path: str | os.PathLike) -> Iterator[Path]:
    """Where to write ``path`` (a file, a folder such as a SavedModel, with any sidecar files a writer puts
    beside it): the same name inside a fresh private folder beside it (``tempfile.mkdtemp``: a new name,
    mode 0700, never a planted link), moved into place when the block ends without error. For the models
    the package generates into its cache, which their writers (onnx, torch, Keras) open by name."""
    path = Path(path)
    folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.stage", dir=path.parent))
    try:
        yield folder / path.name
        for item in sorted(folder.iterdir()):
            try:
                os.replace(item, path.parent / item.name)
            except OSError:
                if not (path.parent / item.name).exists():
                    raise  # else another process made the same model first: theirs stays
    finally:
        shutil.rmtree(folder, ignore_errors=True)
