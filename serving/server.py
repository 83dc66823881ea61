# SPDX-License-Identifier: Apache-2.0
# SPDX-License-Identifier: Apache-2.0
"""Start, supervise and stop a real ``tritonserver`` without Docker or a GPU, using the binary and python backend shipped
in the ``nvidia-pytriton`` wheel (see ../shared/ENVIRONMENT.md for why each setting is needed).

    python -m serving --repository model_repository [--grpc-port 8001]   (what `make serve` runs)
    python3 -m serving --tritonserver /opt/tritonserver/bin/tritonserver --repository /models \
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

import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from serving.backends import _pytriton_root, backends_available, backends_needed
from serving.control import CONTROL_HEADER, CanaryBusy, ControlError, TritonControl
from serving.ports import LOOPBACK, ModelLoadError, PortInUseError, ServerStartError, _local_host, free_port, port_is_free, process_listens_on
from serving.stubs import SHM_ROOT
from serving.supervisor import Supervision, Supervisor, SupervisorEvent
from serving.tls import TlsSettings

LOG = logging.getLogger("facecamo.serve")


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
