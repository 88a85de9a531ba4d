"""Nothing left behind by a killed `juno-bridge serve` or triton:// client, against a real Triton server:
SIGKILL of the serve command takes its tritonserver and python stubs with it (checked by PID), and what
the dead process could not remove (its model repository, its /dev/shm regions) is swept when the next
server or client starts (checked by path)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from helpers.triton_servers import kill, shm_entries, tiny_server

import juno_bridge as jb  # noqa: E402
from juno_bridge.demo.models.builtin import builtin_input, builtin_model  # noqa: E402
from juno_bridge.serve import free_port  # noqa: E402
from juno_bridge.serve.leftovers import running  # noqa: E402

pytestmark = pytest.mark.triton
TINY = str(builtin_model("tiny"))


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def wait_gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while (alive := [p for p in pids if running(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def owned_by(pid: int) -> tuple[list[Path], list[str]]:
    """The model repositories and /dev/shm regions that carry ``pid`` as their owner."""
    dirs = list(Path(tempfile.gettempdir()).glob(f"juno-bridge-serve-{pid}-*"))
    regions = [n for n in shm_entries() if n.startswith((f"jbserve{pid}x", f"jb{pid}x"))]
    return dirs, regions


def test_a_sigkilled_serve_takes_server_and_stubs_with_it_and_the_next_start_sweeps_its_leftovers():
    port = free_port()
    serve = subprocess.Popen([sys.executable, "-m", "juno_bridge.cli", "serve", TINY, "--port", str(port),
                              "--name", "tiny"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = serve.stdout.readline()
        assert f"serving tiny at 127.0.0.1:{port}" in line, line + serve.stdout.read()
        x = builtin_input("tiny", 3)
        remote = jb.Session(f"triton://127.0.0.1:{port}/tiny")
        np.testing.assert_array_equal(remote.run({"x": x})["y"], jb.Session(TINY).run({"x": x})["y"])
        remote.close()
        (server_pid,) = [p for p in children(serve.pid) if "tritonserver" in Path(f"/proc/{p}/cmdline").read_text()]
        stubs = children(server_pid)
        assert stubs and all("triton_python_backend_stub" in Path(f"/proc/{p}/cmdline").read_text() for p in stubs)
        dirs, regions = owned_by(serve.pid)
        assert len(dirs) == 1 and regions, (dirs, regions)  # what the sweep must find later
        serve.send_signal(signal.SIGKILL)
        serve.wait()
        # The server dies at once (PR_SET_PDEATHSIG); its stubs see their parent gone and end.
        assert wait_gone([server_pid], 5) == []
        assert wait_gone(stubs, 10) == []
        # The dead process could not clean up; the next server start (any process) sweeps it.
        with tiny_server() as other:
            assert owned_by(serve.pid) == ([], [])
            assert other.url()  # and serves normally
        assert not dirs[0].exists()
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()


CLIENT = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    import juno_bridge as jb
    remote = jb.Session(sys.argv[1], config={"shared_memory": "on"})
    remote.run({"x": np.ones((4, 8), np.float32)})
    print("ran", flush=True)
    time.sleep(300)
""")


def registered(server) -> list[str]:
    """The system shared memory regions registered with ``server``."""
    import tritonclient.grpc as grpcclient

    with grpcclient.InferenceServerClient(server.address) as client:
        return list(client.get_system_shared_memory_status(as_json=True, client_timeout=5).get("regions", {}))


def test_a_sigkilled_clients_shared_memory_is_swept_by_the_next_client(tmp_path):
    server = tiny_server()
    try:
        script = tmp_path / "client.py"
        script.write_text(CLIENT)
        # Its own process group, killed whole (what a batch system does): the client and the resource
        # tracker that would otherwise unlink its regions.
        client = subprocess.Popen([sys.executable, str(script), server.url()], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, start_new_session=True)
        assert client.stdout.readline().strip() == "ran", client.stderr.read()
        _, regions = owned_by(client.pid)
        assert sorted(n.rsplit("_", 1)[1] for n in regions) == ["in", "out"], regions
        os.killpg(client.pid, signal.SIGKILL)
        client.wait()
        time.sleep(0.5)
        _, left = owned_by(client.pid)
        assert left == regions  # nothing removed them: the sweep's work
        assert set(registered(server)) >= set(regions)  # and the server holds them mapped
        remote = jb.Session(server.url(), config={"shared_memory": "on"})
        x = builtin_input("tiny", 2)
        np.testing.assert_array_equal(remote.run({"x": x})["y"], jb.Session(TINY).run({"x": x})["y"])
        assert owned_by(client.pid) == ([], [])
        # The next client also unregistered them: the server unmapped them (else 9 MB each, for ever).
        assert not set(registered(server)) & set(regions)
        remote.close()
    finally:
        server.stop()


def test_a_server_started_from_a_thread_outlives_the_thread_and_dies_with_the_process():
    import threading

    started = []
    thread = threading.Thread(target=lambda: started.append(tiny_server()))
    thread.start()
    thread.join()
    server = started[0]
    try:
        # PR_SET_PDEATHSIG follows the forking thread: the launcher thread, not the one that ended.
        time.sleep(0.5)
        assert server.process.poll() is None
        remote = jb.Session(server.url())
        x = builtin_input("tiny", 2)
        np.testing.assert_array_equal(remote.run({"x": x})["y"], jb.Session(TINY).run({"x": x})["y"])
        remote.close()
    finally:
        server.stop()
        kill(server.process.pid)
