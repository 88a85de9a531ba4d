"""`juno-bridge serve`: a real NVIDIA Triton Inference Server for our models, on this machine.

The server binary comes from the ``nvidia-pytriton`` wheel (Triton 2.51, python backend only), fetched
once with ``pip install --no-deps --target`` into the cache dir: installing its Python package into our
environment would downgrade numpy. Every served model is a python-backend model
(juno_bridge/serve/triton_model.py) whose instances run our Session, so ONNX, torch and Python models are
served alike. Dynamic batching merges concurrent requests into one Session.run.

    with TritonServer(["vertex.onnx"], port=8001) as server:
        jb.Session(f"triton://{server.address}/vertex")
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from juno_bridge.errors import BackendUnavailableError, InvalidArgumentError, ModelLoadError
from juno_bridge.paths import PACKAGE_DIR, cache_dir
from juno_bridge.serve import leftovers
from juno_bridge.serve.leftovers import unregister_dead_clients
from juno_bridge.serve.protocol import TAG_OUTPUT

PYTRITON_VERSION = "0.7.0"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
_TRITON_TYPES = {"float32": "TYPE_FP32", "float64": "TYPE_FP64", "float16": "TYPE_FP16", "int8": "TYPE_INT8",
                 "int16": "TYPE_INT16", "int32": "TYPE_INT32", "int64": "TYPE_INT64", "uint8": "TYPE_UINT8",
                 "uint16": "TYPE_UINT16", "uint32": "TYPE_UINT32", "uint64": "TYPE_UINT64", "bool": "TYPE_BOOL"}


def triton_home() -> Path:
    """The unpacked nvidia-pytriton wheel's ``tritonserver`` dir, fetched into the cache on first use."""
    root = cache_dir() / f"nvidia-pytriton-{PYTRITON_VERSION}"
    home = root / "pytriton" / "tritonserver"
    stub = home / "backends" / "python" / "triton_python_backend_stub"
    if stub.exists():
        return home
    with open(cache_dir() / f".nvidia-pytriton-{PYTRITON_VERSION}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent first uses (Dask workers, tests) fetch it once
        if not stub.exists():
            _fetch_pytriton(root)
            tag = f"{sys.version_info.major}.{sys.version_info.minor}"
            source = home / "python_backend_stubs" / tag / "triton_python_backend_stub"
            if not source.exists():
                raise BackendUnavailableError(f"nvidia-pytriton {PYTRITON_VERSION} has no python backend stub "
                                              f"for Python {tag}")
            shutil.copy2(source, stub.with_suffix(".tmp"))
            os.replace(stub.with_suffix(".tmp"), stub)
    return home


def _fetch_pytriton(root: Path) -> None:
    if (root / "pytriton" / "tritonserver" / "bin" / "tritonserver").exists():
        return
    tmp = Path(tempfile.mkdtemp(prefix=".pytriton-", dir=root.parent))
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
           "--target", str(tmp), f"nvidia-pytriton=={PYTRITON_VERSION}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BackendUnavailableError(f"cannot fetch the Triton server (nvidia-pytriton=={PYTRITON_VERSION}) "
                                      f"with pip: {done.stderr.strip()[-2000:]}")
    shutil.rmtree(root, ignore_errors=True)
    os.replace(tmp, root)


@dataclass(frozen=True)
class ServedModel:
    name: str
    model: str              # path or python:module:attr, as Session takes it
    options: dict           # Session keyword options inside each instance


def served_name(model: str) -> str:
    """``vertex.onnx`` -> ``vertex``; ``python:pkg.mod:reco`` -> ``reco``."""
    stem = model.rsplit(":", 1)[-1].rsplit(".", 1)[-1] if model.startswith("python:") else Path(model).stem
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", stem)
    if not name:
        raise InvalidArgumentError(f"cannot derive a model name from {model!r}: give --name")
    return name


def _model_config(served: ServedModel, max_batch: int, queue_delay_us: int, instances: int) -> str:
    """config.pbtxt from the model's own signature, read through a local Session."""
    import juno_bridge as jb

    session = jb.Session(served.model, **served.options)
    try:
        tensors = [("input", t) for t in session.inputs()] + [("output", t) for t in session.outputs()]
    finally:
        session.close()
    for role, t in tensors:
        if t.dtype is None or t.shape is None:
            raise ModelLoadError(f"model {served.model!r}: {role} '{t.name}' ({t.type_name}, rank "
                                 f"{'unknown' if t.shape is None else len(t.shape)}) cannot be served")
        if str(t.dtype) not in _TRITON_TYPES:  # bfloat16: Triton's Python backend gives no numpy array of it
            raise ModelLoadError(f"model {served.model!r}: {role} '{t.name}' is {t.type_name}, which juno-bridge "
                                 f"serve does not pass; it serves {', '.join(_TRITON_TYPES)}")
    # A leading dynamic dim on every tensor is the batch dim Triton's dynamic batcher fills.
    batched = max_batch > 0 and all(len(t.shape) >= 1 and t.shape[0] < 0 for _, t in tensors)
    lines = [f'name: "{served.name}"', 'backend: "python"', f"max_batch_size: {max_batch if batched else 0}"]
    for role, t in tensors:
        dims = list(t.shape[1:] if batched else t.shape)
        # A rank-1 batched tensor ([B]) or a scalar has no dims of its own: Triton wants at least one, so
        # it is declared [1] and reshaped to [] (the client then sees [B] or [], as the model has it).
        shape = f'dims: [ {", ".join(str(d) for d in dims)} ]' if dims else "dims: [ 1 ] reshape: { shape: [ ] }"
        lines.append(f'{role} [ {{ name: "{t.name}" data_type: {_TRITON_TYPES[str(t.dtype)]} {shape} }} ]')
    # Every response carries its request's tag (juno_bridge.remote checks it: an answer that belongs to
    # another request, as the python backend has sent after a stopped stub resumed, is an error).
    lines.append(f'output [ {{ name: "{TAG_OUTPUT}" data_type: TYPE_UINT64 dims: [ 1 ] }} ]')
    if batched:
        lines.append(f"dynamic_batching {{ max_queue_delay_microseconds: {queue_delay_us} }}")
    lines.append(f"instance_group [ {{ count: {instances} kind: KIND_CPU }} ]")
    package_parent = str(PACKAGE_DIR.parent)
    parameters = {"juno_bridge_model": served.model, "juno_bridge_options": json.dumps(served.options),
                  # The stub ignores PYTHONPATH: it gets ours, so an uninstalled checkout and test modules work.
                  "juno_bridge_sys_path": json.dumps([package_parent] +
                                                     [p for p in sys.path if p and Path(p).is_dir()])}
    for key, value in parameters.items():
        lines.append(f"parameters {{ key: {json.dumps(key)} value: {{ string_value: {json.dumps(value)} }} }}")
    return "\n".join(lines) + "\n"


def write_repository(directory: Path, models: list[ServedModel], max_batch: int = 64, queue_delay_us: int = 100,
                     instances: int = 1) -> Path:
    """A Triton model repository: <name>/config.pbtxt and <name>/1/model.py per model."""
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise InvalidArgumentError(f"two models would be served under the same name: {names}; use --name")
    model_py = Path(__file__).with_name("triton_model.py")
    for served in models:
        if not served.model.startswith("python:"):
            if not Path(served.model).exists():
                raise ModelLoadError(f"model file '{served.model}' does not exist")
            served = ServedModel(served.name, str(Path(served.model).resolve()), served.options)
        version = directory / served.name / "1"
        version.mkdir(parents=True, exist_ok=True)
        (directory / served.name / "config.pbtxt").write_text(
            _model_config(served, max_batch, queue_delay_us, instances))
        shutil.copy(model_py, version / "model.py")
    return directory


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TritonServer:
    """One tritonserver process on loopback serving ``models``; a context manager.

    Start-up is polled (readiness of the server and of every model), bounded by ``start_timeout``; stop
    sends SIGTERM, then SIGKILL to the whole process group (server and its python-backend stubs) after
    ``exit_timeout``, and removes the server's own leftovers in /dev/shm (a unique region prefix). The
    server dies with this process, even by SIGKILL; what a killed process leaves in the temp folder and
    /dev/shm is swept when the next server starts (juno_bridge.serve.leftovers).
    """

    def __init__(self, models: list[str] | list[ServedModel], host: str = "127.0.0.1", port: int = 0,
                 max_batch: int = 64, queue_delay_us: int = 100, instances: int = 1,
                 names: list[str] | None = None, start_timeout: float = 60.0, exit_timeout: int = 5,
                 log: str | os.PathLike | None = None, shared_memory: str = "auto"):
        if shared_memory not in ("auto", "on", "off"):
            raise InvalidArgumentError(f"shared_memory: expected auto, on or off, got {shared_memory!r}")
        if not models:
            raise InvalidArgumentError("serve needs at least one model")
        if names is not None and len(names) != len(models):
            raise InvalidArgumentError(f"--name given {len(names)} time(s) for {len(models)} model(s)")
        self.models = [m if isinstance(m, ServedModel) else
                       ServedModel(names[i] if names else served_name(m), m, {"intra_op_threads": 1})
                       for i, m in enumerate(models)]
        self.host, self.port = host, port or free_port()
        # Registering system shared memory lets a caller have the server read and write any /dev/shm object
        # its user can open: refused (auto) unless the server listens on loopback only, where it pays off.
        self.shared_memory = shared_memory == "on" or (shared_memory == "auto" and host in LOOPBACK)
        self.max_batch, self.queue_delay_us, self.instances = max_batch, queue_delay_us, instances
        self.start_timeout, self.exit_timeout = start_timeout, exit_timeout
        leftovers.sweep()  # what killed servers of this machine left behind
        self.shm_prefix = leftovers.shm_name("jbserve")  # carries our PID: swept once we are gone
        self._workdir = Path(tempfile.mkdtemp(prefix=leftovers.workdir_prefix()))
        self.log_path = Path(log) if log else self._workdir / "tritonserver.log"
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def url(self, name: str | None = None) -> str:
        return f"triton://{self.address}/{name or self.models[0].name}"

    def command(self, home: Path) -> list[str]:
        command = [str(home / "bin" / "tritonserver"), f"--model-repository={self._workdir / 'models'}",
                   f"--backend-directory={home / 'backends'}", f"--grpc-address={self.host}",
                   f"--grpc-port={self.port}", "--allow-http=false", "--allow-metrics=false",
                   f"--exit-timeout-secs={self.exit_timeout}", "--log-verbose=0",
                   f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
                   "--backend-config=python,shm-growth-byte-size=16777216"]
        if not self.shared_memory:
            # Triton's one access check: the protocol wants a header with this value, which no client is
            # given (it is random per start): registration is refused, and triton:// clients go without.
            command.append(f"--grpc-restricted-protocol=shared-memory:juno-bridge-no-shm={os.urandom(16).hex()}")
        return command

    def environment(self) -> dict:
        env = dict(os.environ)
        # The stub links libpython from LIBDIR and runs the first python3 on PATH: ours.
        libdir = sysconfig.get_config_var("LIBDIR") or ""
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, env.get("LD_LIBRARY_PATH", "")) if p)
        env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
        return env

    def start(self) -> "TritonServer":
        home = triton_home()
        write_repository(self._workdir / "models", self.models, self.max_batch, self.queue_delay_us, self.instances)
        log = open(self.log_path, "ab")
        # The stubs import from their working directory first: run them in the server's own directory, so
        # a source checkout in the caller's directory never shadows the installed package.
        # Tied to this process: SIGKILLed when it ends, whatever ends it; its stubs follow on their own.
        # umask 077: whatever the server and its stubs create is theirs only (see protect_regions).
        self.process = leftovers.spawn_tied(self.command(home), stdout=log, stderr=subprocess.STDOUT,
                                            env=self.environment(), start_new_session=True, cwd=self._workdir,
                                            umask=0o077)
        log.close()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.protect_regions()
        return self

    def protect_regions(self) -> list[str]:
        """Makes the python backend's regions 0600. Its shared memory (event inputs and outputs) is created
        0644 whatever the umask (boost::interprocess sets the mode with fchmod): this runs once the models
        are loaded, before a request can bring data, and `serve` repeats it for any new region."""
        changed = []
        for entry in Path("/dev/shm").glob(f"{self.shm_prefix}*"):
            try:
                if entry.stat().st_mode & 0o077:
                    entry.chmod(0o600)
                    changed.append(entry.name)
            except OSError:  # gone meanwhile
                pass
        return changed

    def _wait_ready(self) -> None:
        import tritonclient.grpc as grpcclient

        deadline = time.monotonic() + self.start_timeout
        client = grpcclient.InferenceServerClient(self.address)
        try:
            while True:
                if self.process.poll() is not None:
                    raise BackendUnavailableError(f"tritonserver at {self.address} exited with code "
                                                  f"{self.process.returncode} while starting:\n{self.log_tail()}")
                try:
                    if client.is_server_ready(client_timeout=1.0) and all(
                            client.is_model_ready(m.name, client_timeout=1.0) for m in self.models):
                        return
                except Exception:  # not listening yet
                    pass
                if time.monotonic() > deadline:
                    raise BackendUnavailableError(f"tritonserver at {self.address} not ready after "
                                                  f"{self.start_timeout:.0f} s:\n{self.log_tail()}")
                time.sleep(0.05)
        finally:
            client.close()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(filtered_log(text)[-lines:])

    def stub_pids(self) -> list[int]:
        """The live python backend stubs of the server (one per model instance)."""
        return [pid for pid in leftovers.children(self.process.pid) if "triton_python_backend_stub" in
                leftovers.cmdline(pid)] if self.process is not None else []

    def restart(self) -> "TritonServer":
        """Stops the server and starts it again on the same address (a model instance died)."""
        self.stop(remove_workdir=False)
        return self.start()

    def stop(self, remove_workdir: bool = True) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.kill(self.process.pid, signal.SIGCONT)  # a paused server cannot act on SIGTERM
                self.process.send_signal(signal.SIGTERM)
                self.process.wait(timeout=self.exit_timeout + 5)
            except subprocess.TimeoutExpired:
                pass
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)  # stubs left behind by a killed server
            except (ProcessLookupError, PermissionError):
                pass
            self.process.wait()
        self.remove_shm_leftovers()
        if remove_workdir:  # the model repository, and the log unless it was given elsewhere
            shutil.rmtree(self._workdir, ignore_errors=True)

    def remove_shm_leftovers(self) -> list[str]:
        removed = []
        for entry in Path("/dev/shm").glob(f"{self.shm_prefix}*"):
            try:
                entry.unlink()
                removed.append(entry.name)
            except OSError:
                pass
        return removed

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# numpy 2 names its DLPack capsules differently from what the python backend's stub checks after use:
# each output prints this harmless traceback. The log filter drops exactly those blocks.
_CAPSULE_NOISE = "PyCapsule_GetPointer called with incorrect name"


def filtered_log(lines: list[str]) -> list[str]:
    out: list[str] = []
    block: list[str] = []
    for line in lines:
        if line.startswith("Traceback (most recent call last)") or (block and line.startswith((" ", "\t"))):
            block.append(line)
            continue
        if block:
            if _CAPSULE_NOISE not in line:
                out += block + [line]
            block = []
            continue
        out.append(line)
    return out + block


MAX_RESTARTS = 3          # restarts of a server whose model instance or process died ...
RESTART_WINDOW_S = 600.0  # ... within this many seconds; one more ends `serve` with an error
SWEEP_PERIOD_S = 5.0      # how often `serve` unregisters the regions of clients that were killed


def serve_forever(server: TritonServer) -> None:
    """Runs until SIGINT/SIGTERM. A python backend stub that dies leaves Triton reporting its model ready
    while every call fails: the server is then restarted on the same address (so is a server that exited),
    at most MAX_RESTARTS times in RESTART_WINDOW_S, then ``serve`` ends with an error. Regions registered by
    clients that no longer exist are unregistered every SWEEP_PERIOD_S."""
    stop = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.append(1))
    server.start()
    print(f"serving {', '.join(m.name for m in server.models)} at {server.address} "
          f"(triton://{server.address}/<model>); Ctrl-C stops", flush=True)
    restarts: list[float] = []
    try:
        stubs, swept = server.stub_pids(), time.monotonic()
        while not stop:
            time.sleep(0.2)
            dead = [pid for pid in stubs if not leftovers.running(pid)]
            if server.process.poll() is None and not dead:
                server.protect_regions()
                if time.monotonic() - swept > SWEEP_PERIOD_S:
                    swept = time.monotonic()
                    unregister_dead_clients(server.address)
                continue
            why = (f"tritonserver exited with code {server.process.returncode}" if server.process.poll() is not None
                   else f"model instance stub(s) {dead} died")
            restarts = [t for t in restarts if time.monotonic() - t < RESTART_WINDOW_S] + [time.monotonic()]
            if len(restarts) > MAX_RESTARTS:
                raise BackendUnavailableError(f"{why}; {MAX_RESTARTS} restarts in {RESTART_WINDOW_S:.0f} s "
                                              f"already: giving up")
            print(f"{why}: restarting the server at {server.address}", file=sys.stderr, flush=True)
            server.restart()
            stubs = server.stub_pids()
    finally:
        server.stop()
