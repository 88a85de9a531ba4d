"""Native libraries' start-up chatter kept off a command's stderr: TensorFlow's C library, loaded by the
tf plugin, writes absl's "All log messages before absl::InitializeLog()" warning and oneDNN's
"custom operations are on" line straight to file descriptor 2, whatever TF_CPP_MIN_LOG_LEVEL says. The
CLI runs its commands with descriptor 2 read through a filter that drops those lines and passes
everything else through as it comes (progress bars included); ``juno-bridge --verbose`` keeps them.
Written by hand: no library filters a descriptor (Python's logging and warnings see only Python's
writes)."""
from __future__ import annotations

import contextlib
import os
import re
import sys
import threading

# Whole lines to drop: absl's pre-initialisation warning, and INFO lines of TensorFlow's start-up sources.
NOISE = re.compile(rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
                   rb"|I\d{4} [\d:.]+ +\d+ (port|cpu_feature_guard|cpu_utils)\.cc:\d+\] .*)\r?$")
# The start of such a line: a partial line that may become one is held until its end comes.
MAYBE_NOISE = re.compile(rb"^(W(A(R(N(I(N(G(:.*)?)?)?)?)?)?)?|I\d{0,4}( .*)?)$")


def _pump(read_fd: int, out_fd: int) -> None:
    pending = b""
    while True:
        chunk = os.read(read_fd, 65536)
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        out = b"".join(line + b"\n" for line in lines if not NOISE.match(line))
        if pending and not MAYBE_NOISE.match(pending):  # a progress bar's "\r..." goes out at once
            out, pending = out + pending, b""
        if out:
            os.write(out_fd, out)
    if pending and not NOISE.match(pending):
        os.write(out_fd, pending)


@contextlib.contextmanager
def filtered(enabled: bool = True):
    """Descriptor 2 (C and Python writes alike) without the NOISE lines while the block runs."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    pump = threading.Thread(target=_pump, args=(read_fd, saved), name="juno-bridge-stderr", daemon=True)
    pump.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last writer in this process goes: the pump reads to its end
        pump.join(timeout=10)  # a child that still holds the pipe keeps it open: do not wait for ever
        if not pump.is_alive():
            os.close(read_fd)
        os.close(saved)
