"""Python algorithms the Dask tests run in worker processes (`python:helpers.dask_algos:<name>`; tests/ is on
their PYTHONPATH)."""
import os
import signal

import numpy as np

import juno_bridge as jb

W = (np.arange(8 * 4, dtype=np.float32).reshape(8, 4) % 5 - 2) / 10


@jb.algorithm(inputs={"x": ("float32", ("B", 8))}, outputs={"y": ("float32", ("B", 4))})
def linear(inputs, outputs):
    np.matmul(inputs["x"], W, out=outputs["y"])


@jb.algorithm(inputs={"x": ("float32", ("B", 8))}, outputs={"y": ("float32", ("B", 4))})
def dies_once(inputs, outputs):
    """Kills its own worker process on its first call ever (a marker file remembers), then computes linear."""
    marker = os.environ["JB_TEST_KILL_MARKER"]
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        np.matmul(inputs["x"], W, out=outputs["y"])
        return
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


@jb.algorithm(inputs={"x": ("float32", ("B", 8))}, outputs={"y": ("float32", ("B", 4096))})
def wide(inputs, outputs):
    """16 KiB of output per event from 32 bytes of input: big output files from small inputs."""
    outputs["y"].reshape(-1, 512, 8)[...] = inputs["x"][:, None, :]


_calls = []


@jb.algorithm(inputs={"x": ("float32", ("B", 8))}, outputs={"y": ("float32", ("B", 4))})
def dies_mid_file(inputs, outputs):
    """Kills its own worker process on the second batch it ever sees (the first process to get there; a marker
    file remembers), so a streamed output (ROOT) is half written; computes linear otherwise."""
    _calls.append(None)
    if len(_calls) == 2:
        try:
            fd = os.open(os.environ["JB_TEST_KILL_MARKER"], os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)
    np.matmul(inputs["x"], W, out=outputs["y"])
