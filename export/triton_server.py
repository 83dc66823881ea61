# SPDX-License-Identifier: Apache-2.0
"""Start, supervise and stop a real ``tritonserver`` without Docker or a GPU, using the binary and python backend shipped
in the ``nvidia-pytriton`` wheel (see ../shared/ENVIRONMENT.md for why each setting is needed).

    python -m export.triton_server --repository model_repository [--grpc-port 8001]   (what `make serve` runs)
    python3 -m export.triton_server --tritonserver /opt/tritonserver/bin/tritonserver --repository /models \
        --grpc-address 0.0.0.0 --http-address 0.0.0.0 --metrics-address 0.0.0.0   (NVIDIA's container: Dockerfile)

What it guarantees, beyond starting the binary:

- **The server that answers is the one it started.** Each port is checked free before the start and, once Triton says
  it is ready, owned by the started process (Linux: its listening sockets); a port clash fails at once, naming the
  port, instead of reporting success while another server answers. Every port is bound to 127.0.0.1 unless
  ``--grpc-address``/``--http-address``/``--metrics-address`` say otherwise (0.0.0.0 inside a container).
- **The binary and its backends**: the ``nvidia-pytriton`` wheel's by default (CPU, python backend only), or
  ``--tritonserver PATH`` (NVIDIA's container: /opt/tritonserver/bin/tritonserver) with its backends beside it
  (``--backend-directory``). A repository with a model for a backend the binary lacks (``make export
  FLAVOUR=onnxruntime`` served by the wheel's binary) fails before the start, naming the models and the export to run.
- **A model that cannot load is named**: the start fails with each model's reason, and the server is not left running.
- **Faults heal, and readiness tells the truth.** Triton starts in explicit model-control mode (``--load-model=*``);
  a supervisor thread watches the python-backend stub processes (children of the server) and sends a canary frame
  through the public model every ``canary_interval_s``. When a stub dies (Triton never restarts one: every later
  request would fail "Stub process ... is not healthy" behind green health checks) or the canary fails twice, it
  unloads the public model (so ``is_model_ready("facecamo")`` is false during the gap: clients such as the SDK's
  ``wait_until_ready`` see the truth), reloads the broken model(s), loads the public model again and re-runs the
  canary. The replaced load's processes are then gone: Triton finalises an unloaded model's instances in turn, and an
  instance whose process died can hold the others' processes (and their shared memory) until shutdown, so the
  supervisor kills those left after a grace period and unlinks their shared memory. The model-repository API
  (load/unload) is restricted to the launcher by a per-start secret header.
- **TLS** on gRPC (``--grpc-server-cert``/``--grpc-server-key``), mutual TLS (``--grpc-use-ssl-mutual`` with
  ``--grpc-root-cert``, the CA that signs client certificates).
- **Nothing is left behind**: the per-start work folder (a copy of the python backend, the log) and the shared-memory
  segments of this server's stubs (named with a per-start prefix) are removed on stop and on a failed start.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from facecamo import spec

LOG = logging.getLogger("facecamo.serve")
LOOPBACK = "127.0.0.1"
CONTROL_HEADER = "facecamo-control"  # the model-repository API (load/unload) answers only requests carrying it
SHM_ROOT = Path("/dev/shm")


class ServerStartError(RuntimeError):
    """tritonserver could not be started; the message says why and what to change."""


class PortInUseError(ServerStartError):
    """A port the server needs is taken by another process."""

    def __init__(self, message: str, port: int) -> None:
        super().__init__(message)
        self.port = port


class ModelLoadError(ServerStartError):
    """One or more models failed to load (or the public model failed its canary), so the server is not started."""

    def __init__(self, message: str, models: Sequence[str]) -> None:
        super().__init__(message)
        self.models = list(models)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def port_is_free(port: int, address: str = LOOPBACK) -> bool:
    """Whether a server could listen on ``address:port`` now (SO_REUSEADDR as servers set it, so a port in TIME_WAIT
    counts as free and only a listening socket as taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


def listening_sockets(port: int) -> dict[str, str]:
    """Linux: ``{socket inode: local address}`` of the TCP sockets listening on ``port`` (IPv4 and IPv6), read from
    /proc/net/tcp{,6}; empty where /proc is absent. IPv4 addresses are dotted ("127.0.0.1")."""
    found: dict[str, str] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            address, hex_port = local.rsplit(":", 1)
            if state != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                continue
            if len(address) == 8:
                address = socket.inet_ntoa(bytes.fromhex(address)[::-1])
            found[inode] = address
    return found


def process_listens_on(pid: int, port: int) -> bool | None:
    """Whether process ``pid`` owns a socket listening on ``port``; None where this cannot be known (no /proc)."""
    if not Path("/proc/net/tcp").exists():
        return None
    inodes = set(listening_sockets(port))
    if not inodes:
        return False
    try:
        links = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    except OSError:
        return False
    return any(f"socket:[{inode}]" in links for inode in inodes)


def _local_host(address: str) -> str:
    """Where this machine reaches a server listening on ``address`` (a wildcard address: loopback)."""
    return LOOPBACK if address in ("0.0.0.0", "::", "", "localhost") else address


# Triton's platforms and the backend each runs on (--backend-directory holds one folder per backend).
PLATFORM_BACKENDS = {"onnxruntime_onnx": "onnxruntime", "tensorrt_plan": "tensorrt", "pytorch_libtorch": "pytorch",
                     "tensorflow_savedmodel": "tensorflow", "tensorflow_graphdef": "tensorflow", "openvino": "openvino"}
_CONFIG_FIELD = re.compile(r'^(backend|platform)\s*:\s*"([^"]+)"', re.MULTILINE)


def backends_needed(repository: Path, models: Sequence[str] | None = None) -> dict[str, str]:
    """``{model: backend}`` for the models of ``repository`` (or only ``models``) as their config.pbtxt names them;
    the ensemble platform (part of Triton's core) needs none."""
    needed = {}
    for config in sorted(Path(repository).glob("*/config.pbtxt")):
        name = config.parent.name
        if models is not None and name not in models:
            continue
        fields = dict((key, value) for key, value in _CONFIG_FIELD.findall(config.read_text(errors="replace")))
        backend = fields.get("backend") or PLATFORM_BACKENDS.get(fields.get("platform", ""), fields.get("platform"))
        if backend and backend != "ensemble":
            needed[name] = backend
    return needed


def backends_available(backend_directory: Path) -> set[str]:
    """The backends in a Triton backend directory: each ``NAME/`` holding ``libtriton_NAME.so``."""
    try:
        return {entry.name for entry in Path(backend_directory).iterdir() if (entry / f"libtriton_{entry.name}.so").is_file()}
    except OSError:
        return set()


def _pytriton_root() -> Path:
    found = importlib.util.find_spec("pytriton")
    if found is None or not found.submodule_search_locations:
        raise FileNotFoundError("nvidia-pytriton is not installed: `pip install -r requirements/serve.txt`, or use NVIDIA's Triton container")
    return Path(found.submodule_search_locations[0])


# -- TLS -----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TlsSettings:
    """gRPC TLS for tritonserver (``--grpc-use-ssl``).

    Attributes:
        server_cert, server_key: PEM files: the server's certificate (its subject/SAN must name the host clients
            dial) and private key.
        root_cert: PEM file of the CA whose signature a client certificate must carry (required for ``mutual``).
        mutual: require and verify a client certificate (``--grpc-use-ssl-mutual``).
    """

    server_cert: Path
    server_key: Path
    root_cert: Path | None = None
    mutual: bool = False

    def check(self) -> None:
        """Raise ServerStartError naming the file or option that cannot work."""
        if self.mutual and self.root_cert is None:
            raise ServerStartError("mutual TLS needs the CA that signs client certificates: --grpc-root-cert (TLS_CA=)")
        for option, path in (("--grpc-server-cert (TLS_CERT=)", self.server_cert), ("--grpc-server-key (TLS_KEY=)", self.server_key),
                             ("--grpc-root-cert (TLS_CA=)", self.root_cert)):
            if path is None:
                continue
            try:
                head = Path(path).read_bytes()[:65536]
            except OSError as error:
                raise ServerStartError(f"{option}: cannot read {path}: {error.strerror}") from None
            if b"-----BEGIN" not in head:
                raise ServerStartError(f"{option}: {path} is not a PEM file (no '-----BEGIN' line)")

    def flags(self) -> list[str]:
        flags = ["--grpc-use-ssl=true", f"--grpc-server-cert={Path(self.server_cert).resolve()}",
                 f"--grpc-server-key={Path(self.server_key).resolve()}"]
        if self.root_cert is not None:
            flags.append(f"--grpc-root-cert={Path(self.root_cert).resolve()}")
        flags.append(f"--grpc-use-ssl-mutual={'true' if self.mutual else 'false'}")
        return flags


# -- the server's python-backend stubs ------------------------------------------------------------------------------
@dataclass(frozen=True)
class StubProcess:
    """One python-backend stub: a child process of tritonserver running one instance of one model.

    Its command line is ``triton_python_backend_stub <repository>/<model>/<version>/model.py <shm region> <shm size>
    <shm growth> <parent pid> <backend dir> <ipc handle> <instance name> <kind>``."""

    pid: int
    model: str
    instance: str
    shm_region: str
    dead: bool  # exited but not reaped (tritonserver does not reap a stub that died): a zombie


def python_stubs(server_pid: int) -> dict[int, StubProcess]:
    """The python-backend stubs whose parent is ``server_pid`` (Linux /proc; empty elsewhere)."""
    stubs: dict[int, StubProcess] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return stubs
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            state, parent = stat.rsplit(")", 1)[1].split()[:2]
            if int(parent) != server_pid:
                continue
            args = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except (OSError, ValueError, IndexError):
            continue
        if state == "Z":  # a zombie's command line is empty: it was a stub if tritonserver never reaped it
            stubs[int(entry)] = StubProcess(int(entry), "?", "?", "", dead=True)
        elif args and args[0].endswith("triton_python_backend_stub") and len(args) > 8:
            stubs[int(entry)] = StubProcess(int(entry), Path(args[1]).parents[1].name, args[8], args[2], dead=False)
    return stubs


# -- Triton's HTTP API on loopback: health, model control, a JSON inference for the canary ----------------------------
class ControlError(RuntimeError):
    """A model-control or inference call failed; the message is Triton's."""


class TritonControl:
    """Triton's HTTP/REST API on loopback, with the launcher's model-control header. Plain urllib: thread-safe and
    independent of the gRPC port's TLS."""

    def __init__(self, http_port: int, control_key: str, host: str = LOOPBACK) -> None:
        self.base = f"http://{host}:{http_port}"
        self.headers = {CONTROL_HEADER: control_key}

    def _call(self, method: str, path: str, body: dict | None = None, timeout: float = 60.0) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={**self.headers, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    @staticmethod
    def _error(payload: bytes) -> str:
        try:
            return str(json.loads(payload).get("error", payload[:500]))
        except (ValueError, AttributeError):
            return payload[:500].decode(errors="replace")

    def server_ready(self) -> bool:
        try:
            return self._call("GET", "/v2/health/ready", timeout=2.0)[0] == 200
        except OSError:
            return False

    def model_ready(self, model: str) -> bool:
        try:
            return self._call("GET", f"/v2/models/{model}/ready", timeout=2.0)[0] == 200
        except OSError:
            return False

    def index(self) -> list[dict]:
        code, payload = self._call("POST", "/v2/repository/index")
        if code != 200:
            raise ControlError(f"repository index: {self._error(payload)}")
        return json.loads(payload)

    def load(self, model: str, timeout: float = 300.0) -> None:
        """(Re)load ``model``; returns once it is loaded, raises ControlError with Triton's reason otherwise."""
        code, payload = self._call("POST", f"/v2/repository/models/{model}/load", timeout=timeout)
        if code != 200:
            raise ControlError(f"loading {model!r} failed: {self._error(payload)}")

    def unload(self, model: str) -> None:
        code, payload = self._call("POST", f"/v2/repository/models/{model}/unload", {"parameters": {"unload_dependents": False}})
        if code != 200:
            raise ControlError(f"unloading {model!r} failed: {self._error(payload)}")

    def infer(self, model: str, inputs: dict[str, np.ndarray], outputs: Sequence[str], timeout: float,
              parameters: dict | None = None) -> dict[str, np.ndarray]:
        """One inference with JSON tensors (small inputs only); ``parameters`` go with the request (a python model
        reads them with ``request.parameters()``). Raises ControlError (Triton's error) or OSError (timeout,
        connection)."""
        dtypes = {np.dtype(np.uint8): "UINT8", np.dtype(np.int32): "INT32", np.dtype(np.float32): "FP32"}
        body = {"inputs": [{"name": name, "shape": list(value.shape), "datatype": dtypes[value.dtype],
                            "data": value.reshape(-1).tolist()} for name, value in inputs.items()],
                "outputs": [{"name": name, "parameters": {"binary_data": False}} for name in outputs]}
        if parameters:
            body["parameters"] = parameters
        code, payload = self._call("POST", f"/v2/models/{model}/infer", body, timeout=timeout)
        if code != 200:
            raise ControlError(self._error(payload))
        answer = json.loads(payload)
        numpy_types = {"UINT8": np.uint8, "INT32": np.int32, "FP32": np.float32}
        return {o["name"]: np.array(o.get("data", []), numpy_types.get(o["datatype"], np.float64)).reshape(o["shape"])
                for o in answer.get("outputs", [])}


# -- the canary -------------------------------------------------------------------------------------------------------
class CanaryBusy(Exception):
    """The canary got no answer in time: the server is busy (a long request ahead of it), not known to be broken."""


Canary = Callable[[TritonControl, float], None]  # raises ControlError/AssertionError when broken, CanaryBusy when slow


CANARY_PARAMETER = "facecamo_canary"  # request parameter marking the supervisor's canary (keep it out of product metrics)


def facecamo_canary(control: TritonControl, timeout: float) -> None:
    """A 64x64 grey frame (no face) through ``facecamo``: the public model's process, its BLS calls to the detector and
    its pass-through must all work. It must come back unchanged, bit for bit, with no faces. The request carries the
    parameter ``facecamo_canary: true``."""
    frame = np.full((64, 64, 3), 128, np.uint8)
    try:
        outputs = control.infer(spec.ENSEMBLE, {spec.FRAME: frame}, [spec.CAMOUFLAGED_FRAME, spec.FACE_STATUS], timeout,
                                parameters={CANARY_PARAMETER: True})
    except (TimeoutError, socket.timeout) as error:
        raise CanaryBusy(f"no answer within {timeout:.0f} s") from error
    except urllib.error.URLError as error:
        if isinstance(error.reason, (TimeoutError, socket.timeout)):
            raise CanaryBusy(f"no answer within {timeout:.0f} s") from error
        raise ControlError(f"cannot reach the server: {error.reason}") from error
    returned = outputs.get(spec.CAMOUFLAGED_FRAME)
    if returned is None or returned.shape != frame.shape or not np.array_equal(returned, frame):
        raise ControlError("a frame without faces did not come back unchanged")
    if outputs.get(spec.FACE_STATUS) is not None and outputs[spec.FACE_STATUS].size:
        raise ControlError(f"faces reported in a blank frame: {outputs[spec.FACE_STATUS].size}")


# -- supervision --------------------------------------------------------------------------------------------------------
@dataclass
class SupervisorEvent:
    """What the supervisor saw or did: ``kind`` is "broken" (models, why), "restored" (models, seconds of the gap),
    "retry" (a restart attempt failed: why), "ended" (a process of a replaced load still running after the restart
    was killed) or "busy" (the canary timed out: not acted upon)."""

    at: float  # time.monotonic()
    kind: str
    models: list[str]
    detail: str = ""


@dataclass(frozen=True)
class Supervision:
    """Supervisor settings. ``public_models``: what clients call (unloaded during a restart so their readiness is
    false); ``canary``: a probe through the public model (None: stub watching only); ``failures_to_act``: consecutive
    canary failures (not timeouts) before a restart."""

    public_models: tuple[str, ...] = (spec.ENSEMBLE,)
    canary: Canary | None = facecamo_canary
    poll_interval_s: float = 0.5
    canary_interval_s: float = 2.0
    canary_timeout_s: float = 20.0
    failures_to_act: int = 2
    max_backoff_s: float = 30.0
    old_load_grace_s: float = 5.0  # after a restart, how long the replaced load's processes get to exit by themselves


class Supervisor(threading.Thread):
    """Watches a running tritonserver and restarts broken models (see the module's docstring).

    Two threads: this one watches the stub processes every ``poll_interval_s`` and does every restart; a second one
    runs the canary (which may wait behind long requests) and only reports its verdict, so a slow canary never delays
    noticing a dead process."""

    def __init__(self, server: TritonServer, settings: Supervision) -> None:
        super().__init__(name="facecamo-supervisor", daemon=True)
        self.server, self.settings = server, settings
        self.control = server.control
        self.healthy = threading.Event()
        self.healthy.set()
        self.events: collections.deque[SupervisorEvent] = collections.deque(maxlen=1000)
        self._stop_event = threading.Event()
        self._known: dict[int, StubProcess] = {}
        self._retired: set[int] = set()  # stubs of instances we unloaded: their exit is not a death
        self._dead_regions: set[str] = set()
        self._old_loads: list[tuple[float, dict[int, StubProcess]]] = []  # replaced loads' processes: (deadline, pids)
        self.stuck_unloads = 0  # replaced model loads Triton may never finish unloading (one of their processes died)
        self._canary_failure: str | None = None
        self._canary_thread = threading.Thread(target=self._canary_loop, name="facecamo-canary", daemon=True)

    def stop(self) -> None:
        self._stop_event.set()
        for thread in (self, self._canary_thread):
            if thread.is_alive():
                thread.join(timeout=60)

    def _record(self, kind: str, models: Sequence[str], detail: str = "") -> None:
        self.events.append(SupervisorEvent(time.monotonic(), kind, sorted(models), detail))
        level = logging.INFO if kind in ("restored", "busy", "ended") else logging.WARNING
        LOG.log(level, "supervisor: %s %s%s", kind, ", ".join(sorted(models)) or "-", f": {detail}" if detail else "")

    def _live_stubs(self) -> dict[int, StubProcess]:
        process = self.server.process
        if process is None:
            return {}
        return {pid: stub for pid, stub in python_stubs(process.pid).items() if not stub.dead and pid not in self._retired}

    def _dead_stubs(self) -> list[StubProcess]:
        current = python_stubs(self.server.process.pid)
        dead = [stub for pid, stub in self._known.items() if pid not in current or current[pid].dead]
        for pid in [stub.pid for stub in dead]:
            del self._known[pid]
        for pid, stub in current.items():  # an instance loaded since the last look
            if not stub.dead and pid not in self._retired:
                self._known.setdefault(pid, stub)
        self._retired &= set(current)
        return dead

    def run(self) -> None:
        self._known = self._live_stubs()
        if self.settings.canary is not None:
            self._canary_thread.start()
        while not self._stop_event.wait(self.settings.poll_interval_s):
            process = self.server.process
            if process is None:
                self.healthy.clear()
                return
            if process.poll() is not None:
                # tritonserver itself died (its python backend aborts, e.g. on a mutex a killed process held):
                # start it again on the same ports, readiness false meanwhile.
                self._restart_server(f"tritonserver exited with code {process.returncode}")
                continue
            dead = self._dead_stubs()
            if dead:
                self._dead_regions.update(stub.shm_region for stub in dead if stub.shm_region)
                instances = ", ".join(stub.instance for stub in dead)
                self._restart({stub.model for stub in dead}, f"python-backend process of {instances} died", dead)
            elif self._canary_failure is not None:
                self._restart(self._all_models(), self._canary_failure)
            self._canary_failure = None
            self._end_old_loads()

    def _canary_loop(self) -> None:
        failures, busy = 0, False
        while not self._stop_event.wait(self.settings.canary_interval_s):
            if not self.healthy.is_set() or self._canary_failure is not None:
                failures = 0
                continue  # a restart is under way: it runs its own canary
            try:
                self.settings.canary(self.control, self.settings.canary_timeout_s)
                failures, busy = 0, False
            except CanaryBusy as slow:  # behind long requests: reported once per busy spell, never acted upon
                if not busy:
                    self._record("busy", self.settings.public_models, str(slow))
                busy = True
            except (ControlError, OSError) as error:
                busy = False
                failures += 1
                if failures >= self.settings.failures_to_act and self.healthy.is_set():
                    self._canary_failure = f"canary failed {failures} times: {error}"
                    failures = 0

    def _all_models(self) -> set[str]:
        try:
            return {entry["name"] for entry in self.control.index()}
        except (ControlError, OSError):
            return set(self.settings.public_models)

    def _restart(self, models: set[str], why: str, died: Sequence[StubProcess] = ()) -> None:
        """Unload the public models (readiness false), unload and load ``models``, load the public models, re-run the
        canary; retried with backoff until it works or the launcher stops. ``died``: the processes whose death
        caused it."""
        self.healthy.clear()
        started = time.monotonic()
        self._record("broken", models, why)
        # A process that died before this restart (a canary failure may start it before the process watch looks)
        # leaves its shared memory behind: remember it before its pid is retired below.
        died = [*died, *self._dead_stubs()]
        self._dead_regions.update(stub.shm_region for stub in died if stub.shm_region)
        # Triton does not always finish unloading a model one of whose processes died (it can wait for that process's
        # answer for ever): such a model may stay "live" until Triton's exit timeout, and stop() knows to expect it.
        self.stuck_unloads += len({stub.model for stub in died})
        delay = 1.0
        old_load: dict[int, StubProcess] = {}
        while not self._stop_event.is_set():
            touched = models | set(self.settings.public_models)
            # Every process of a model about to be unloaded (including those a failed attempt loaded) will exit.
            current = {**self._known, **self._live_stubs()}
            old_load.update({pid: stub for pid, stub in current.items() if stub.model in touched})
            self._retired |= set(old_load)
            try:
                self._restart_once(models)
            except (ControlError, OSError) as error:
                self._record("retry", models, f"{error}; next try in {delay:.0f} s")
                if self._stop_event.wait(delay):
                    return
                delay = min(delay * 2, self.settings.max_backoff_s)
                continue
            self._old_loads.append((time.monotonic() + self.settings.old_load_grace_s, old_load))
            # Keep watching the stubs that were not restarted (one that died meanwhile is noticed at the next look).
            self._known = {pid: stub for pid, stub in self._known.items() if pid not in self._retired}
            for pid, stub in self._live_stubs().items():
                self._known.setdefault(pid, stub)
            self._forget_dead_regions()
            self.healthy.set()
            self._record("restored", models, f"after {time.monotonic() - started:.1f} s")
            return

    def _restart_server(self, why: str) -> None:
        self.healthy.clear()
        started = time.monotonic()
        self._record("broken", ["tritonserver"], why)
        delay = 1.0
        while not self._stop_event.is_set():
            try:
                self.server._relaunch()
            except (ServerStartError, TimeoutError, OSError) as error:
                self._record("retry", ["tritonserver"], f"{error}; next try in {delay:.0f} s")
                if self._stop_event.wait(delay):
                    return
                delay = min(delay * 2, self.settings.max_backoff_s)
                continue
            self._known, self._retired = self._live_stubs(), set()
            self._dead_regions.clear()
            self._old_loads.clear()
            self.stuck_unloads = 0
            self.healthy.set()
            self._record("restored", ["tritonserver"], f"after {time.monotonic() - started:.1f} s")
            return

    def _restart_once(self, models: set[str]) -> None:
        public = list(self.settings.public_models)
        # Public models first (their readiness turns false at once), then the broken ones: a load of a model that is
        # still loaded is a no-op in Triton (the dead instance would keep serving "Stub process ... is not healthy").
        for name in public + sorted(models - set(public)):
            try:
                self.control.unload(name)
            except ControlError:
                pass  # not loaded: nothing to unload
        for name in sorted(models - set(public)) + public:
            self.control.load(name)
        if self.settings.canary is not None:
            deadline = time.monotonic() + self.settings.canary_timeout_s
            while True:  # the first requests after a load may be slow; a definite failure is not retried here
                try:
                    self.settings.canary(self.control, self.settings.canary_timeout_s)
                    return
                except CanaryBusy:
                    if time.monotonic() > deadline:
                        raise ControlError("the canary got no answer after the restart") from None

    def _end_old_loads(self) -> None:
        """After a restart, no process of the replaced load may stay. Triton finalises an unloaded model's instances
        one after another, and an instance whose process died holds up the rest: their processes kept running, each
        with its shared memory (257 MB and a 71 MB region for a ``facecamo`` instance), until the server stopped.
        Looked at on every watch (the restart does not wait for it): those still running ``old_load_grace_s`` after
        the restart are killed, and every old process's shared-memory region is unlinked once none runs."""
        server = self.server.process
        if server is None or not self._old_loads:
            return
        current = python_stubs(server.pid)
        pending = []
        for deadline, old_load in self._old_loads:
            # the same process: same pid and the same shared-memory region (a new process could reuse a freed pid)
            left = [stub for pid, stub in old_load.items() if pid in current and not current[pid].dead
                    and current[pid].shm_region == stub.shm_region]
            if left and time.monotonic() < deadline:
                pending.append((deadline, old_load))
                continue
            for stub in left:
                try:
                    os.kill(stub.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    continue
                self._record("ended", [stub.model], f"process {stub.pid} of the replaced {stub.instance} was still running: killed")
            self._dead_regions.update(stub.shm_region for stub in old_load.values() if stub.shm_region)
            self._forget_dead_regions()
        self._old_loads = pending

    def _forget_dead_regions(self) -> None:
        """Unlink the shared-memory segments of stubs that died (Triton keeps them mapped and never unlinks them;
        the names are unique, so nothing reuses them)."""
        for region in self._dead_regions:
            try:
                (SHM_ROOT / region).unlink()
            except OSError:
                pass
        self._dead_regions.clear()


# -- the server ---------------------------------------------------------------------------------------------------------
PORTS = (("gRPC", "grpc_port", "GRPC_PORT"), ("HTTP", "http_port", "HTTP_PORT"), ("metrics", "metrics_port", "METRICS_PORT"))
_CLASH = re.compile(r"failed to start (\w+) service: .*?Socket '([^']*):(\d+)' already in use")
_LOAD_FAILURE = re.compile(r"failed to load '([^']+)' version (\d+): (.*)")
# Triton's shutdown: what still holds it each second, then its verdict when --exit-timeout-secs runs out.
_LIVE_AT_EXIT = re.compile(r"Timeout \d+: Found (\d+) live models")
_IN_FLIGHT_AT_EXIT = re.compile(r"Timeout \d+: Found (\d+) model versions that have in-flight inferences")
_EXIT_TIMEOUT = "Exit timeout expired"


def _wait_until_gone(group: int, timeout: float = 10.0) -> None:
    """Wait until no process of ``group`` is left (killed stubs take a moment to be reaped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)


class TritonServer:
    """A supervised tritonserver process serving ``repository``.

    Use as a context manager; ``grpc_url`` is ``<grpc_address>:<port>`` (127.0.0.1 by default). ``stop`` stops the
    supervisor, sends SIGTERM to the server's process group (its python-backend stubs included) and waits, then
    removes this start's work folder and shared-memory segments; the log's text stays readable through
    :meth:`log_tail` (it is written to ``log_path`` if given, else into the work folder).

    Args:
        repository: the model repository.
        grpc_port, http_port, metrics_port: None picks a free port.
        tls: gRPC TLS settings, or None.
        grpc_address: the gRPC listening address (HTTP and metrics: ``http_address``, ``metrics_address``).
        supervision: None runs no supervisor (a plain tritonserver in explicit mode).
        models: the models to load at start (default: all).
        http_address, metrics_address: where HTTP (health, the launcher's model control) and metrics listen
            (127.0.0.1 by default; 0.0.0.0 inside a container, whose published ports are the boundary).
        tritonserver: the binary to run (default: the ``nvidia-pytriton`` wheel's, CPU and python backend only);
            NVIDIA's container has ``/opt/tritonserver/bin/tritonserver``.
        backend_directory: the backends for ``tritonserver`` (default: ``backends/`` beside its ``bin/``); only with
            ``tritonserver``: the wheel's binary gets a prepared copy of its python backend.
    """

    def __init__(self, repository: Path, grpc_port: int | None = None, http_port: int | None = None,
                 metrics_port: int | None = None, log_path: Path | None = None, verbose: bool = False,
                 tls: TlsSettings | None = None, grpc_address: str = LOOPBACK,
                 supervision: Supervision | None = Supervision(), models: Sequence[str] | None = None,
                 http_address: str = LOOPBACK, metrics_address: str = LOOPBACK, tritonserver: Path | None = None,
                 backend_directory: Path | None = None) -> None:
        if backend_directory is not None and tritonserver is None:
            raise ValueError("backend_directory goes with tritonserver (the wheel's binary uses its own python backend)")
        self.repository = Path(repository).resolve()
        self.http_address, self.metrics_address = http_address, metrics_address
        self.tritonserver = Path(tritonserver) if tritonserver is not None else None
        self.backend_directory = (Path(backend_directory) if backend_directory is not None else
                                  self.tritonserver.resolve().parents[1] / "backends" if self.tritonserver is not None else None)
        self.grpc_port = grpc_port or free_port()
        self.http_port = http_port or free_port()
        self.metrics_port = metrics_port or free_port()
        self.grpc_address = grpc_address
        self.tls = tls
        self.verbose = verbose
        self.supervision = supervision
        self.models = list(models) if models is not None else None
        self.log_path: Path | None = Path(log_path) if log_path else None
        self._own_log = log_path is None
        self._workdir: Path | None = None
        self._final_log: str | None = None
        self._control_key = secrets.token_hex(16)
        self.control = TritonControl(self.http_port, self._control_key, _local_host(http_address))
        self.shm_prefix = ""
        self.process: subprocess.Popen | None = None
        self.supervisor: Supervisor | None = None
        self.stop_note = ""  # what stop() found worth saying about a clean stop

    @property
    def grpc_url(self) -> str:
        host = "localhost" if self.grpc_address in ("0.0.0.0", "::") else self.grpc_address
        return f"{host}:{self.grpc_port}"

    @property
    def events(self) -> list[SupervisorEvent]:
        """What the supervisor saw and did (the latest 1000 events)."""
        return list(self.supervisor.events) if self.supervisor else []

    def _backend_dir(self, root: Path) -> Path:
        backends = self._workdir / "backends"
        python = backends / "python"
        if (python / "triton_python_backend_stub").exists():  # a relaunch after a crash reuses the first start's copy
            return backends
        shutil.copytree(root / "tritonserver" / "backends" / "python", python, ignore=shutil.ignore_patterns("__pycache__"))
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        stub = root / "tritonserver" / "python_backend_stubs" / version / "triton_python_backend_stub"
        if not stub.exists():
            raise FileNotFoundError(f"nvidia-pytriton has no python-backend stub for Python {version}")
        shutil.copy(stub, python / "triton_python_backend_stub")
        return backends

    def command_and_env(self) -> tuple[list[str], dict[str, str]]:
        """The tritonserver command line and environment (creates the work folder if needed)."""
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="facecamo-triton-"))
            # Unique per start and containing "triton", so this start's segments (and only them) can be removed.
            self.shm_prefix = f"facecamo_triton_{self._workdir.name.rsplit('-', 1)[-1]}_"
        env = dict(os.environ)
        libraries = [sysconfig.get_config_var("LIBDIR"), env.get("LD_LIBRARY_PATH")]
        if self.tritonserver is None:
            root = _pytriton_root()
            binary, backends = root / "tritonserver" / "bin" / "tritonserver", self._backend_dir(root)
            libraries.insert(0, str(root.parent / "nvidia_pytriton.libs"))
        else:  # the container's own binary and backends find their libraries as installed
            binary, backends = self.tritonserver, self.backend_directory
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, libraries))
        # The stub's interpreter finds its packages through the first python3 on PATH: this environment's.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        restricted = f"model-repository:{CONTROL_HEADER}={self._control_key}"
        command = [
            str(binary),
            f"--model-repository={self.repository}",
            f"--backend-directory={backends}",
            f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
            f"--http-address={self.http_address}", f"--grpc-address={self.grpc_address}", f"--metrics-address={self.metrics_address}",
            f"--http-port={self.http_port}", f"--grpc-port={self.grpc_port}", f"--metrics-port={self.metrics_port}",
            "--model-control-mode=explicit",
            *([f"--load-model={name}" for name in self.models] if self.models is not None else ["--load-model=*"]),
            f"--http-restricted-api={restricted}", f"--grpc-restricted-protocol={restricted}",
            "--allow-gpu-metrics=false", "--pinned-memory-pool-byte-size=0", "--exit-timeout-secs=5",
            "--strict-readiness=true", f"--log-verbose={1 if self.verbose else 0}",
        ]
        if self.tls is not None:
            command += self.tls.flags()
        return command, env

    def _check_backends(self) -> None:
        """Every model's backend must be in the binary's backend directory: the wheel's binary has only the python
        backend, so a repository exported for Triton's native backends cannot load (it would fail model by model)."""
        if self.tritonserver is None:
            root = _pytriton_root()
            where, available = "the nvidia-pytriton wheel's tritonserver", backends_available(root / "tritonserver" / "backends")
        else:
            where, available = f"{self.tritonserver} (backends in {self.backend_directory})", backends_available(self.backend_directory)
        missing = {model: backend for model, backend in backends_needed(self.repository, self.models).items() if backend not in available}
        if not missing:
            return
        listed = ", ".join(f"{model} ({backend})" for model, backend in sorted(missing.items()))
        flavours = sorted(set(missing.values()) - {"python"})
        advice = (f"{self.repository} was exported for Triton's native {' and '.join(flavours)} backend(s): re-run `make export` "
                  "(the python flavour, FLAVOUR=python) to serve it here, or serve this export in NVIDIA's Triton container "
                  "(README: Deploying in NVIDIA's Triton container)" if flavours else "re-run `make export`")
        raise ServerStartError(f"{where} has no backend for {listed}; it has: {', '.join(sorted(available)) or 'none'}. {advice}")

    def _check_before_start(self) -> None:
        public = self.supervision.public_models if self.supervision else ()
        for model in public:
            if not (self.repository / model / "config.pbtxt").is_file():
                raise FileNotFoundError(f"{self.repository} holds no model {model!r}; run `make export` first")
        if self.tritonserver is not None and not (self.tritonserver.is_file() and os.access(self.tritonserver, os.X_OK)):
            raise FileNotFoundError(f"--tritonserver {self.tritonserver}: no executable there")
        self._check_backends()
        if self.tls is not None:
            self.tls.check()
        ports = [(label, getattr(self, attribute), variable) for label, attribute, variable in PORTS]
        if len({port for _, port, _ in ports}) < len(ports):
            raise ServerStartError(f"the gRPC, HTTP and metrics ports must differ, got {[port for _, port, _ in ports]}")
        for label, port, variable in ports:
            address = {"gRPC": self.grpc_address, "HTTP": self.http_address}.get(label, self.metrics_address)
            if not port_is_free(port, address):
                raise PortInUseError(f"port {port} ({label}) on {address} is already in use: another server (another "
                                     f"`make serve`?) is listening there. Stop it, or choose another port ({variable}=...)", port)

    def start(self, timeout: float = 180.0) -> TritonServer:
        """Start the server and return once it is ready, it owns its ports and the public model passed its canary.

        Raises:
            PortInUseError: a port is taken (before the start, or found when tritonserver fails to bind it).
            ModelLoadError: models failed to load (each named with its reason), or the canary failed.
            ServerStartError, FileNotFoundError: another reason to not start (the message says what).
            TimeoutError: not ready within ``timeout``.
        Nothing is left running or on disk when it raises.
        """
        self._check_before_start()
        try:
            command, env = self.command_and_env()
            if self.log_path is None:
                self.log_path = self._workdir / "tritonserver.log"
            with open(self.log_path, "wb") as log:
                # cwd: the work folder. The stubs' interpreters put their cwd first on sys.path, so started from a
                # checkout they would import its facecamo package instead of the copy inside the repository.
                self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self._workdir,
                                                start_new_session=True)
            self._wait_until_started(timeout)
            self._initial_canary()
        except BaseException:
            self.stop()
            raise
        if self.supervision is not None:
            self.supervisor = Supervisor(self, self.supervision)
            self.supervisor.start()
        LOG.info("tritonserver %d serving %s: gRPC %s, HTTP %s:%d, metrics %s:%d", self.process.pid, self.repository,
                 self.grpc_url, self.http_address, self.http_port, self.metrics_address, self.metrics_port)
        return self

    def _relaunch(self, timeout: float = 180.0) -> None:
        """Start tritonserver again after it died, on the same ports and work folder: what is left of the old process
        group is killed and its shared-memory segments removed first. Raises as :meth:`start` does."""
        old = self.process
        if old is not None:
            try:
                os.killpg(old.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            old.wait()
            _wait_until_gone(old.pid)
        self._remove_segments()
        command, env = self.command_and_env()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self._workdir,
                                            start_new_session=True)
        self._wait_until_started(timeout)
        self._initial_canary()

    def _wait_until_started(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        confirmed_at = None
        while time.monotonic() < deadline:
            log = self._log_text()
            clash = _CLASH.search(log)
            if clash:
                raise self._clash_error(clash)
            if self.process.poll() is not None:
                raise self._diagnose_exit(log)
            if self.control.server_ready() and all(process_listens_on(self.process.pid, port) is not False
                                                   for port in (self.grpc_port, self.http_port, self.metrics_port)):
                # Triton logs a clash a few ms after the service's "Started" line: confirm once more a moment later.
                if confirmed_at is None:
                    confirmed_at = time.monotonic()
                elif time.monotonic() - confirmed_at >= 0.5:
                    return
            else:
                confirmed_at = None
            time.sleep(0.1)
        raise TimeoutError(f"tritonserver was not ready within {timeout:.0f} s:\n{self.log_tail()}")

    def _initial_canary(self) -> None:
        """A model that loads but cannot serve (the canary fails) fails the start: it is never reported ready."""
        if self.supervision is None or self.supervision.canary is None:
            return
        try:
            self.supervision.canary(self.control, max(self.supervision.canary_timeout_s, 60.0))
        except (ControlError, CanaryBusy, OSError) as error:
            raise ModelLoadError(f"the server loaded, but a blank frame through {', '.join(self.supervision.public_models)} "
                                 f"failed: {error}", self.supervision.public_models) from None

    def _clash_error(self, clash: re.Match) -> PortInUseError:
        service, host, port = clash.group(1), clash.group(2), int(clash.group(3))
        variable = {"GRPC": "GRPC_PORT", "HTTP": "HTTP_PORT", "Metrics": "METRICS_PORT"}.get(service, "the port")
        return PortInUseError(f"port {port} ({service}) on {host} is already in use: another server is listening there "
                              f"(tritonserver could not bind it). Stop it, or choose another port ({variable}=...)", port)

    def _diagnose_exit(self, log: str) -> ServerStartError:
        failures: dict[str, str] = {}
        for name, _version, reason in _LOAD_FAILURE.findall(log):
            first_line = reason.split("\\n")[0].strip().strip('"')
            failures.setdefault(name, first_line[:400])
        if failures:
            listed = "\n".join(f"  {name}: {reason}" for name, reason in sorted(failures.items()))
            # The default log lives in the work folder, which the failed start removes: name it only when it is kept.
            kept = f"log: {self.log_path}" if not self._own_log else "the log is removed with the failed start; --log-file FILE (make serve LOG_FILE=) keeps it"
            return ModelLoadError(f"tritonserver exited: {len(failures)} model(s) failed to load, so nothing is served:\n"
                                  f"{listed}\n({kept})", list(failures))
        return ServerStartError(f"tritonserver exited with code {self.process.returncode} while starting:\n{self.log_tail()}")

    def triton_ready(self) -> bool:
        """Triton's own readiness (HTTP /v2/health/ready on this server's port)."""
        return self.control.server_ready()

    def is_ready(self) -> bool:
        """This server is running, Triton says ready, and the supervisor is not restarting a model."""
        alive = self.process is not None and self.process.poll() is None
        healthy = self.supervisor is None or self.supervisor.healthy.is_set()
        return alive and healthy and self.triton_ready()

    def _log_text(self) -> str:
        if self.log_path is None:
            return self._final_log or ""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return self._final_log or ""

    def log_tail(self, characters: int = 4000) -> str:
        """The log's error lines (which name the model that failed and why), then its end."""
        text = self._log_text()
        if not text:
            return "(no log)"
        errors = [line for line in text.splitlines() if line.startswith("E") or "failed to load" in line]
        return ("\n".join(errors[-20:]) + "\n...\n" if errors else "") + text[-characters:]

    def _held_only_by_replaced_loads(self, code: int | None) -> bool:
        """Whether tritonserver's exit code 1 says only that loads the supervisor replaced after a process died could
        not be unloaded (Triton can wait for the dead process's answer until its exit timeout): no inference in flight
        and no more models live at the timeout than such loads."""
        stuck = self.supervisor.stuck_unloads if self.supervisor is not None else 0
        log = self._log_text()
        if code != 1 or not stuck or _EXIT_TIMEOUT not in log:
            return False
        live, in_flight = _LIVE_AT_EXIT.findall(log), _IN_FLIGHT_AT_EXIT.findall(log)
        return bool(live) and int(live[-1]) <= stuck and all(int(count) == 0 for count in in_flight[-1:])

    def stop(self, timeout: float = 30.0) -> int | None:
        """Stop the supervisor, SIGTERM the process group, SIGKILL it after ``timeout``, and remove this start's
        work folder and shared-memory segments. Returns tritonserver's exit code (None if it was not running), 0 when
        the server stopped cleanly but for the loads the supervisor replaced after one of their processes died
        (Triton cannot unload those and exits 1 after its exit timeout; ``stop_note`` says so)."""
        if self.supervisor is not None:
            self.supervisor.stop()
        code = None
        if self.process is not None:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGTERM)
                try:
                    self.process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait()
            try:  # stubs that outlived the server (it gives up on a dead instance after --exit-timeout-secs)
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            _wait_until_gone(self.process.pid)
            code = self.process.returncode
            if self._held_only_by_replaced_loads(code):
                self.stop_note = (f"tritonserver stopped; {self.supervisor.stuck_unloads} replaced model load(s) whose process "
                                  "had died could not be unloaded (Triton cannot), everything else was")
                LOG.info("%s", self.stop_note)
                code = 0
            self.process = None
        self._clean_up()
        return code

    def _remove_segments(self) -> None:
        """Unlink this start's shared-memory segments (their names carry the per-start prefix)."""
        if self.shm_prefix:
            for segment in SHM_ROOT.glob(f"{self.shm_prefix}*"):
                try:
                    segment.unlink()
                except OSError:
                    pass

    def _clean_up(self) -> None:
        self._remove_segments()
        if self._workdir is not None:
            if self._own_log:
                self._final_log = self._log_text()
                self.log_path = None
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", type=Path, default=Path("model_repository"))
    parser.add_argument("--grpc-port", type=int, default=int(os.environ.get("GRPC_PORT", "8001")))
    parser.add_argument("--http-port", type=int, default=int(os.environ.get("HTTP_PORT", "8000")),
                        help="HTTP/REST port (health, readiness, and the launcher's model control)")
    parser.add_argument("--metrics-port", type=int, default=int(os.environ.get("METRICS_PORT", "8002")),
                        help="Prometheus metrics port")
    parser.add_argument("--grpc-address", default=os.environ.get("GRPC_ADDRESS", LOOPBACK),
                        help="gRPC listening address (default 127.0.0.1; 0.0.0.0 for every interface: use TLS then)")
    parser.add_argument("--http-address", default=os.environ.get("HTTP_ADDRESS", LOOPBACK),
                        help="HTTP listening address (default 127.0.0.1; 0.0.0.0 inside a container)")
    parser.add_argument("--metrics-address", default=os.environ.get("METRICS_ADDRESS", LOOPBACK),
                        help="metrics listening address (default 127.0.0.1; 0.0.0.0 inside a container)")
    parser.add_argument("--tritonserver", type=Path, default=None,
                        help="the tritonserver binary (default: the nvidia-pytriton wheel's; NVIDIA's container: "
                             "/opt/tritonserver/bin/tritonserver)")
    parser.add_argument("--backend-directory", type=Path, default=None,
                        help="that binary's backends (default: backends/ beside its bin/); only with --tritonserver")
    tls = parser.add_argument_group("TLS (gRPC)")
    tls.add_argument("--grpc-use-ssl", action="store_true", help="serve gRPC over TLS (implied by --grpc-server-cert)")
    tls.add_argument("--grpc-server-cert", type=Path, help="PEM certificate of the server (TLS_CERT=)")
    tls.add_argument("--grpc-server-key", type=Path, help="PEM private key of the server (TLS_KEY=)")
    tls.add_argument("--grpc-root-cert", type=Path, help="PEM CA that signs client certificates (TLS_CA=)")
    tls.add_argument("--grpc-use-ssl-mutual", action="store_true", help="require client certificates signed by --grpc-root-cert (MTLS=1)")
    parser.add_argument("--log-file", type=Path, default=None, help="keep tritonserver's log here (default: a temporary file)")
    parser.add_argument("--canary-interval", type=float, default=2.0, help="seconds between canary frames (0: stub watching only)")
    parser.add_argument("--no-supervise", action="store_true", help="no supervisor: a crashed model stays down")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)

    settings = None
    wants_tls = args.grpc_use_ssl or args.grpc_use_ssl_mutual or args.grpc_server_cert or args.grpc_server_key or args.grpc_root_cert
    if wants_tls:
        if not (args.grpc_server_cert and args.grpc_server_key):
            print("error: TLS needs the server's certificate and key: --grpc-server-cert and --grpc-server-key "
                  "(make serve TLS_CERT=... TLS_KEY=...)", file=sys.stderr)
            return 2
        settings = TlsSettings(args.grpc_server_cert, args.grpc_server_key, args.grpc_root_cert, args.grpc_use_ssl_mutual)
    elif args.grpc_address not in (LOOPBACK, "localhost"):
        LOG.warning("gRPC listens on %s without TLS: frames travel in clear; give TLS_CERT= and TLS_KEY=", args.grpc_address)
    supervision = None if args.no_supervise else Supervision(canary=facecamo_canary if args.canary_interval > 0 else None,
                                                           canary_interval_s=max(args.canary_interval, 0.1))
    if args.backend_directory is not None and args.tritonserver is None:
        print("error: --backend-directory goes with --tritonserver (the wheel's binary brings its own python backend)", file=sys.stderr)
        return 2
    server = TritonServer(args.repository, args.grpc_port, args.http_port, args.metrics_port, log_path=args.log_file,
                          verbose=args.verbose, tls=settings, grpc_address=args.grpc_address, supervision=supervision,
                          http_address=args.http_address, metrics_address=args.metrics_address,
                          tritonserver=args.tritonserver, backend_directory=args.backend_directory)
    # A SIGTERM while starting (`docker stop` of a container still loading) unwinds the start like Ctrl-C, so the
    # server it was starting (its own session: the signal does not reach it) is stopped, not left behind.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.start()
    except (FileNotFoundError, ServerStartError, TimeoutError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tritonserver stopped while starting.", file=sys.stderr)
        return 0
    scheme = ("mutual TLS" if settings.mutual else "TLS") if settings else "plaintext"
    kept = "" if args.log_file else " (removed on stop; --log-file keeps one)"
    print(f"Triton is serving {args.repository} on gRPC {server.grpc_url} ({scheme}); HTTP {args.http_address}:{server.http_port}, "
          f"metrics http://{args.metrics_address}:{server.metrics_port}/metrics; log: {server.log_path}{kept}. "
          f"Readiness: model {', '.join(supervision.public_models) if supervision else spec.ENSEMBLE} ready. Ctrl-C stops it.", file=sys.stderr)
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    crashed = False
    try:
        while not stop["now"] and server.process and server.process.poll() is None:
            time.sleep(0.5)
        crashed = not stop["now"]
    except KeyboardInterrupt:
        pass
    finally:
        code = server.stop()
    if crashed:
        print(f"error: tritonserver exited on its own with code {code}:\n{server.log_tail()}", file=sys.stderr)
        return code or 1
    if code in (0, None, -signal.SIGTERM):
        print(f"tritonserver stopped{': ' + server.stop_note.split('; ', 1)[1] if server.stop_note else ''}.", file=sys.stderr)
        return 0
    print(f"error: tritonserver exited with code {code} while stopping:\n{server.log_tail()}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
