"""Start and stop a real ``tritonserver`` on loopback without Docker or a GPU, using the binary and python backend
shipped in the ``nvidia-pytriton`` wheel (see ../shared/ENVIRONMENT.md for why each setting is needed).

    python -m export.triton_server --repository model_repository [--grpc-port 8001]   (what `make serve` runs)
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pytriton_root() -> Path:
    found = importlib.util.find_spec("pytriton")
    if found is None or not found.submodule_search_locations:
        raise FileNotFoundError("nvidia-pytriton is not installed: `pip install -r requirements/serve.txt`, or use NVIDIA's Triton container")
    return Path(found.submodule_search_locations[0])


class TritonServer:
    """A tritonserver process serving ``repository`` on 127.0.0.1.

    Use as a context manager; ``grpc_url`` is ``127.0.0.1:<port>``. ``stop`` sends SIGTERM to the server's process
    group (its python-backend stubs included) and waits; the log is kept in ``log_path``.
    """

    def __init__(self, repository: Path, grpc_port: int | None = None, http_port: int | None = None,
                 metrics_port: int | None = None, log_path: Path | None = None, verbose: bool = False) -> None:
        self.repository = Path(repository).resolve()
        self.grpc_port = grpc_port or free_port()
        self.http_port = http_port or free_port()
        self.metrics_port = metrics_port or free_port()
        self._workdir = Path(tempfile.mkdtemp(prefix="facecamo-triton-"))
        self.log_path = Path(log_path) if log_path else self._workdir / "tritonserver.log"
        self.verbose = verbose
        self.process: subprocess.Popen | None = None

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def _backend_dir(self, root: Path) -> Path:
        backends = self._workdir / "backends"
        python = backends / "python"
        shutil.copytree(root / "tritonserver" / "backends" / "python", python, ignore=shutil.ignore_patterns("__pycache__"))
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        stub = root / "tritonserver" / "python_backend_stubs" / version / "triton_python_backend_stub"
        if not stub.exists():
            raise FileNotFoundError(f"nvidia-pytriton has no python-backend stub for Python {version}")
        shutil.copy(stub, python / "triton_python_backend_stub")
        return backends

    def command_and_env(self) -> tuple[list[str], dict[str, str]]:
        root = _pytriton_root()
        libs = root.parent / "nvidia_pytriton.libs"
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(libs), sysconfig.get_config_var("LIBDIR"), env.get("LD_LIBRARY_PATH")]))
        # The stub's interpreter finds its packages through the first python3 on PATH: this environment's.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        command = [
            str(root / "tritonserver" / "bin" / "tritonserver"),
            f"--model-repository={self.repository}",
            f"--backend-directory={self._backend_dir(root)}",
            "--http-address=127.0.0.1", "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1",
            f"--http-port={self.http_port}", f"--grpc-port={self.grpc_port}", f"--metrics-port={self.metrics_port}",
            "--allow-gpu-metrics=false", "--pinned-memory-pool-byte-size=0", "--exit-timeout-secs=5",
            "--strict-readiness=true", f"--log-verbose={1 if self.verbose else 0}",
        ]
        return command, env

    def start(self, timeout: float = 180.0) -> "TritonServer":
        if not (self.repository / "facecamo" / "config.pbtxt").is_file():
            raise FileNotFoundError(f"{self.repository} holds no exported pipeline; run `make export` first")
        command, env = self.command_and_env()
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tritonserver exited with code {self.process.returncode} while starting:\n{self.log_tail()}")
            if self.is_ready():
                return self
            time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"tritonserver was not ready within {timeout:.0f} s:\n{self.log_tail()}")

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/v2/health/ready", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def log_tail(self, characters: int = 4000) -> str:
        """The log's error lines (which name the model that failed and why), then its end."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        errors = [line for line in text.splitlines() if line.startswith("E") or "failed to load" in line]
        return ("\n".join(errors[-20:]) + "\n...\n" if errors else "") + text[-characters:]

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM the process group, then SIGKILL after ``timeout``; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        try:  # stubs that outlived the server
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        code = self.process.returncode
        self.process = None
        return code

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", type=Path, default=Path("model_repository"))
    parser.add_argument("--grpc-port", type=int, default=int(os.environ.get("GRPC_PORT", "8001")))
    parser.add_argument("--http-port", type=int, default=int(os.environ.get("HTTP_PORT", "8000")))
    parser.add_argument("--metrics-port", type=int, default=int(os.environ.get("METRICS_PORT", "8002")))
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    server = TritonServer(args.repository, args.grpc_port, args.http_port, args.metrics_port, verbose=args.verbose)
    try:
        server.start()
    except (FileNotFoundError, RuntimeError, TimeoutError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Triton is serving {args.repository} on gRPC {server.grpc_url} (HTTP 127.0.0.1:{server.http_port}); "
          f"log: {server.log_path}. Ctrl-C stops it.", file=sys.stderr)
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    try:
        while not stop["now"] and server.process and server.process.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        code = server.stop()
    return 0 if code in (0, None, -signal.SIGTERM) else code


if __name__ == "__main__":
    sys.exit(main())
