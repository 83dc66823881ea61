# SPDX-License-Identifier: Apache-2.0
"""Operating the server (`make serve` = `python -m serving`): ports, a model that cannot load, killed model processes
that heal while readiness tells the truth (and leave no process of the replaced load behind), TLS and mutual TLS, the
metrics port on loopback, nothing left behind, a repository for backends the binary lacks, and the container's entry
point (Dockerfile) run here with a given binary and backend directory.

Each test starts its own real tritonserver on the session's tiny exported repository (tests/conftest.py), so the
faults it causes never reach the shared server of the other tests.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import PORTRAITS, ROOT

pytest.importorskip("pytriton", reason="nvidia-pytriton (requirements/serve.txt) provides the tritonserver binary")

from facecamo_client import CamouflageClient, TLSError

from serving.__main__ import main
from serving.backends import _pytriton_root
from serving.ports import ModelLoadError, PortInUseError, ServerStartError, free_port, listening_sockets
from serving.server import TritonServer
from serving.stubs import python_stubs
from serving.supervisor import Supervision
from serving.tls import TlsSettings

VIDEO = ROOT / "assets" / "video" / "video_01.mp4"


def video_frames(count: int) -> list[np.ndarray]:
    """The first ``count`` frames of the committed sample video, RGB."""
    capture = cv2.VideoCapture(str(VIDEO))
    frames = []
    while len(frames) < count:
        ok, frame = capture.read()
        assert ok, f"{VIDEO} has fewer than {count} frames"
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def assert_nothing_left(server: TritonServer, workdir: Path | None, prefix: str, group: int | None = None) -> None:
    """After stop or a failed start: no shared-memory segment of this start, no work folder, no process."""
    assert prefix and not list(Path("/dev/shm").glob(f"{prefix}*")), "shared-memory segments left behind"
    assert workdir is None or not workdir.exists(), f"{workdir} left behind"
    if group is not None:
        left = subprocess.run(["pgrep", "-g", str(group)], capture_output=True, text=True, check=False).stdout.split()
        assert not left, f"processes left behind: {left}"


# -- ports -----------------------------------------------------------------------------------------------------------
def test_a_taken_port_fails_at_once_naming_it(repository, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(PortInUseError, match=f"port {port} \\(gRPC\\).*GRPC_PORT") as caught:
            TritonServer(repository, grpc_port=port).start()
        assert caught.value.port == port and time.monotonic() - started < 5
        # What `make serve` runs: exit code 2 and the port in the message.
        result = subprocess.run([sys.executable, "-m", "serving", "--repository", str(repository),
                                 "--metrics-port", str(port)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 2 and f"port {port} (metrics)" in result.stderr, result.stderr[-2000:]


class _ReadyEverywhere(http.server.BaseHTTPRequestHandler):
    """Another server on the port: answers every health check with 200, like another Triton would."""

    def do_GET(self):
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_another_server_answering_on_our_port_is_not_mistaken_for_ours(repository, monkeypatch):
    """The issue's case: another server answers the readiness check while ours fails to bind. Even with the
    pre-start check bypassed (a port taken between the check and the bind), the start fails naming the port."""
    impostor = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ReadyEverywhere)
    threading.Thread(target=impostor.serve_forever, daemon=True).start()
    port = impostor.server_address[1]
    monkeypatch.setattr("serving.server.port_is_free", lambda *args: True)  # where TritonServer looks it up
    server = TritonServer(repository, http_port=port)
    try:
        with pytest.raises(PortInUseError, match=f"port {port} \\(HTTP\\)"):
            server.start(timeout=120)
        assert server.process is None
    finally:
        impostor.shutdown()
        impostor.server_close()
    assert_nothing_left(server, server._workdir, server.shm_prefix)


# -- a model that cannot work ----------------------------------------------------------------------------------------
def test_a_model_that_cannot_load_is_named_and_nothing_is_left(repository, tmp_path):
    from tests.faults import repository_with_generator

    broken = repository_with_generator(repository, tmp_path / "repository", b"this is not an ONNX file")
    server = TritonServer(broken)
    with pytest.raises(ModelLoadError, match="generator") as caught:
        server.start(timeout=180)
    assert caught.value.models == ["generator"], caught.value
    assert "failed to load" in str(caught.value)
    # the message names no log file the failed start has removed
    assert "/tritonserver.log" not in str(caught.value) and "--log-file" in str(caught.value), caught.value
    assert_nothing_left(server, server._workdir, server.shm_prefix)


def _repository_for(repository: Path, out: Path, platform: str) -> Path:
    """The configs of ``repository`` with the networks on Triton's native ``platform`` (as `make export
    FLAVOUR=onnxruntime` writes them)."""
    for config in repository.glob("*/config.pbtxt"):
        (out / config.parent.name).mkdir(parents=True)
        text = config.read_text()
        if config.parent.name != "facecamo":
            text = text.replace('backend: "python"', f'platform: "{platform}"')
        (out / config.parent.name / "config.pbtxt").write_text(text)
    return out


def test_a_repository_for_backends_the_binary_lacks_fails_before_the_start_naming_make_export(repository, tmp_path, capsys):
    """`make export FLAVOUR=onnxruntime`, then `make serve` (the wheel's binary has only the python backend): the start
    fails at once, naming the models, their backend and `make export`; no server is started, nothing is left."""
    native = _repository_for(repository, tmp_path / "repository", "onnxruntime_onnx")
    server = TritonServer(native)
    with pytest.raises(ServerStartError) as caught:
        server.start()
    message = str(caught.value)
    assert "generator (onnxruntime)" in message and "face_detector (onnxruntime)" in message, message
    assert "make export" in message and "FLAVOUR=python" in message and "it has: python" in message, message
    assert server.process is None and server._workdir is None
    # what `make serve` prints: exit code 2, the same advice
    assert main(["--repository", str(native), "--grpc-port", "0", "--http-port", "0", "--metrics-port", "0"]) == 2
    assert "re-run `make export`" in capsys.readouterr().err
    tensorrt = _repository_for(repository, tmp_path / "tensorrt", "tensorrt_plan")
    with pytest.raises(ServerStartError, match=r"generator \(tensorrt\)"):
        TritonServer(tensorrt).start()


# -- supervision -----------------------------------------------------------------------------------------------------
def _kill_stub(server: TritonServer, model: str):
    """kill -9 one python-backend process of ``model``; returns its :class:`StubProcess`."""
    stubs = [stub for stub in python_stubs(server.process.pid).values() if stub.model == model and not stub.dead]
    assert stubs, f"no live python-backend process for {model}"
    # The newest: after a restart, the unloaded instances' processes may still be on their way out (killing one of
    # those is no fault at all).
    victim = max(stubs, key=lambda stub: stub.pid)
    os.kill(victim.pid, signal.SIGKILL)
    return victim


def test_killed_model_processes_heal_while_readiness_tells_the_truth(repository):
    """kill -9 on the generator's process, then on one of facecamo's, mid-stream: the stream finishes with every
    frame camouflaged or concealed, readiness is false during each gap and true after it, the gaps are bounded."""
    frames = video_frames(30)
    server = TritonServer(repository, supervision=Supervision(canary_interval_s=1.0)).start(timeout=240)
    workdir, prefix, group = server._workdir, server.shm_prefix, server.process.pid
    kills: dict[int, str] = {6: "generator", 16: "facecamo"}  # frame index -> model whose process dies before it
    readiness: list[tuple[float, bool]] = []
    polling = threading.Event()

    def poll_readiness() -> None:
        with CamouflageClient(server.grpc_url) as probe:
            while not polling.is_set():
                readiness.append((time.monotonic(), probe.is_ready()))
                time.sleep(0.05)

    def clip():
        for index, frame in enumerate(frames):
            if index in kills:
                # one fault at a time: the second process dies once the first restart is over
                deadline = time.monotonic() + 180
                while len([e for e in server.events if e.kind == "restored"]) < len(killed_at) and time.monotonic() < deadline:
                    time.sleep(0.1)
                # the load the restart replaces: the killed model's processes and the public model's
                generations.append((server.process.pid, {pid: stub for pid, stub in python_stubs(server.process.pid).items()
                                                         if stub.model in (kills[index], "facecamo") and not stub.dead}))
                killed_at[kills[index]] = (time.monotonic(), _kill_stub(server, kills[index]))
            yield frame

    killed_at: dict[str, tuple[float, int]] = {}
    generations: list[tuple[int, dict]] = []  # (tritonserver pid, {pid: stub}) before each kill
    poller = threading.Thread(target=poll_readiness, daemon=True)
    poller.start()
    try:
        with CamouflageClient(server.grpc_url, timeout_s=120, retry_for_s=180) as sdk:
            results = list(sdk.stream(clip(), max_in_flight=4))
            assert sdk.is_ready()
            # A dead process's shared memory is unlinked after its restart when the supervisor saw it die, and in every
            # case when the server stops (assert_nothing_left below).
            # metrics: served on loopback only, and scraped there
            assert set(listening_sockets(server.metrics_port).values()) == {"127.0.0.1"}
            with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10) as response:
                assert b"nv_inference_request_success" in response.read()
            # model control belongs to the launcher: a client cannot unload the model
            import tritonclient.grpc as grpcclient
            from tritonclient.utils import InferenceServerException

            with grpcclient.InferenceServerClient(server.grpc_url) as plain, pytest.raises(InferenceServerException, match="restricted"):
                plain.unload_model("facecamo")
        # No process of a replaced load survives its restart (issue 19: the other facecamo instance's old process,
        # 257 MB with a 71 MB shared-memory region, kept running until shutdown): those still running after the grace
        # period are killed, and their shared memory is unlinked.
        time.sleep(server.supervision.old_load_grace_s + 2 * server.supervision.poll_interval_s + 1)
        for parent, old_load in generations:
            if parent != server.process.pid:
                continue  # tritonserver itself was started again: its old processes went with it
            current = python_stubs(parent)
            survivors = [stub for pid, stub in old_load.items() if pid in current and not current[pid].dead
                         and current[pid].shm_region == stub.shm_region]
            assert not survivors, f"processes of the replaced load still running: {survivors}"
            regions = {stub.shm_region for stub in old_load.values()}
            assert not regions & {p.name for p in Path("/dev/shm").glob(f"{prefix}*")}, "a replaced load's shared memory left"
    finally:
        polling.set()
        poller.join()
        events = list(server.events)
        stopped = server.stop()
        note = server.stop_note

    assert [r.index for r in results] == list(range(30))
    assert not [r.index for r in results if r.failed], "frames failed instead of being retried through the gap"
    for frame, result in zip(frames, results):
        assert result.frame.shape == frame.shape
        assert all(face.status in ("camouflaged", "fallback", "concealed") for face in result.faces)
        for face in result.faces:  # every face changed: camouflaged or concealed, never returned as it was
            left, top, right, bottom = (round(v) for v in face.box)
            region = (slice(max(top, 0), max(bottom, 1)), slice(max(left, 0), max(right, 1)))
            assert np.abs(result.frame[region].astype(int) - frame[region].astype(int)).mean() > 0.5, (result.index, face)
    assert any(face.status == "camouflaged" for result in results[-5:] for face in result.faces), "not camouflaging after the gaps"
    # A stop after the heals is a clean stop (Triton exits 1 when a replaced load it cannot unload holds its exit)
    assert stopped == 0, (stopped, note, server.log_tail())

    broken = [e for e in events if e.kind == "broken"]
    restored = [e for e in events if e.kind == "restored"]
    # Each death is healed by reloading the model, or, where Triton's python backend aborts the whole server on a
    # killed process (it can, on a shared-memory mutex the process held), by the launcher starting it again.
    assert len(broken) >= 2 and len(restored) == len(broken), events
    for model, (killed, _) in killed_at.items():
        seen = next(e for e in broken if e.at >= killed - 0.5 and e.models in ([model], ["tritonserver"]))
        back = next(e for e in restored if e.at >= seen.at and e.models == seen.models)
        assert seen.at - killed < 5, f"{model}: death noticed after {seen.at - killed:.1f} s"
        assert back.at - killed < 120, f"{model}: gap of {back.at - killed:.1f} s"
        during = [ready for at, ready in readiness if seen.at + 0.2 < at < back.at - 0.2]
        assert during and not any(during), f"{model}: readiness said ready during the gap"
        assert any(ready for at, ready in readiness if at > back.at + 0.5), f"{model}: never ready again"
    assert_nothing_left(server, workdir, prefix, group)


def test_a_failing_canary_restarts_every_model(repository):
    """A canary that fails (twice in a row) without any process dying: the supervisor restarts every model, with
    readiness false meanwhile, and serves again. The canary's failures are scripted (a model that answers wrongly
    while its process lives cannot be caused on demand); the restart runs on the real server."""
    from facecamo.align import load_rgb
    from serving.control import ControlError, facecamo_canary

    calls = {"count": 0}

    def flaky_canary(control, timeout):
        calls["count"] += 1
        if calls["count"] in (2, 3):  # the start's canary passes, the next two fail
            raise ControlError("scripted failure")
        facecamo_canary(control, timeout)

    portrait = load_rgb(str(PORTRAITS / "congress_B000589.jpg"))
    with TritonServer(repository, supervision=Supervision(canary=flaky_canary, canary_interval_s=0.5)) as server:
        with CamouflageClient(server.grpc_url, timeout_s=120, retry_for_s=60) as sdk:
            seen_not_ready = False
            deadline = time.monotonic() + 120
            while not any(e.kind == "restored" for e in server.events) and time.monotonic() < deadline:
                seen_not_ready |= not sdk.is_model_ready()
                time.sleep(0.05)
            broken = [e for e in server.events if e.kind == "broken"]
            assert len(broken) == 1 and "canary failed 2 times" in broken[0].detail, server.events
            assert set(broken[0].models) == {p.name for p in repository.iterdir() if (p / "config.pbtxt").is_file()}
            assert seen_not_ready, "readiness stayed true while every model was restarted"
            sdk.wait_until_ready(timeout_s=60)
            assert sdk.camouflage(portrait).all_camouflaged


# -- TLS -------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> dict[str, Path]:
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate signed by it, and a client
    certificate signed by another CA; made with the openssl command line."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command line is not installed: it makes the test certificates")
    folder = tmp_path_factory.mktemp("certificates")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=folder, check=True, capture_output=True)

    for ca in ("ca", "other_ca"):
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.crt", "-days", "2", "-subj", f"/CN={ca}")
    (folder / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name, ca in (("server", "ca"), ("client", "ca"), ("rogue", "other_ca")):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "2", "-extfile", "san.ext")
    return {path.stem + path.suffix.replace(".", "_"): path for path in folder.iterdir()}


def _assert_tls_error_at_once(make_client, frame: np.ndarray) -> None:
    started = time.monotonic()
    with pytest.raises(TLSError), make_client() as client:
        client.camouflage(frame)
    with pytest.raises(TLSError), make_client() as client:
        client.wait_until_ready(timeout_s=30)
    assert time.monotonic() - started < 10, "a TLS failure was retried like an outage"


def test_tls_round_trip_and_certificate_errors(repository, certificates):
    from facecamo.align import load_rgb

    portrait = load_rgb(str(PORTRAITS / "congress_B000589.jpg"))
    tls = TlsSettings(certificates["server_crt"], certificates["server_key"])
    with TritonServer(repository, tls=tls, supervision=Supervision(canary=None)) as server:
        with CamouflageClient(server.grpc_url, ssl=True, root_certificates=str(certificates["ca_crt"]), timeout_s=120) as sdk:
            sdk.wait_until_ready(timeout_s=60)
            assert sdk.camouflage(portrait).all_camouflaged
        # a server certificate this client does not trust
        _assert_tls_error_at_once(lambda: CamouflageClient(server.grpc_url, ssl=True, retry_for_s=30,
                                                           root_certificates=str(certificates["other_ca_crt"])), portrait)
        # a plaintext client at a TLS server
        _assert_tls_error_at_once(lambda: CamouflageClient(server.grpc_url, retry_for_s=30), portrait)


def test_mutual_tls_round_trip_and_rejected_clients(repository, certificates):
    from facecamo.align import load_rgb

    portrait = load_rgb(str(PORTRAITS / "congress_B000589.jpg"))
    tls = TlsSettings(certificates["server_crt"], certificates["server_key"], certificates["ca_crt"], mutual=True)
    ca = str(certificates["ca_crt"])
    with TritonServer(repository, tls=tls, supervision=Supervision(canary=None)) as server:
        with CamouflageClient(server.grpc_url, ssl=True, root_certificates=ca, private_key=str(certificates["client_key"]),
                              certificate_chain=str(certificates["client_crt"]), timeout_s=120) as sdk:
            sdk.wait_until_ready(timeout_s=60)
            assert sdk.camouflage(portrait).all_camouflaged
        # no client certificate
        _assert_tls_error_at_once(lambda: CamouflageClient(server.grpc_url, ssl=True, root_certificates=ca, retry_for_s=30), portrait)
        # a client certificate from another CA
        _assert_tls_error_at_once(lambda: CamouflageClient(server.grpc_url, ssl=True, root_certificates=ca, retry_for_s=30,
                                                           private_key=str(certificates["rogue_key"]),
                                                           certificate_chain=str(certificates["rogue_crt"])), portrait)


def test_tls_settings_that_cannot_work_fail_before_the_start(repository, certificates, tmp_path):
    (tmp_path / "not_pem.crt").write_text("hello")
    cases = [
        (TlsSettings(tmp_path / "absent.crt", certificates["server_key"]), "cannot read"),
        (TlsSettings(tmp_path / "not_pem.crt", certificates["server_key"]), "not a PEM file"),
        (TlsSettings(certificates["server_crt"], certificates["server_key"], None, mutual=True), "--grpc-root-cert"),
    ]
    for settings, message in cases:
        server = TritonServer(repository, tls=settings)
        with pytest.raises(ServerStartError, match=message):
            server.start()
        assert server.process is None and server._workdir is None


# -- a stop after a heal ---------------------------------------------------------------------------------------------
_SHUTDOWN = """I1202 01:41:43.691115 5471 server.cc:321] "Timeout 5: Found 0 model versions that have in-flight inferences"
I1202 01:41:43.692226 5471 server.cc:345] "Timeout 5: Found 5 live models and 0 in-flight non-inference requests"
I1202 01:41:47.693429 5471 server.cc:345] "Timeout 1: Found {live} live models and 0 in-flight non-inference requests"
I1202 01:41:48.693639 5471 server.cc:345] "Timeout 0: Found {live} live models and 0 in-flight non-inference requests"
E1202 01:41:48.693748 5471 main.cc:535] "failed to stop server: Internal - Exit timeout expired. Exiting immediately."
"""


@pytest.mark.parametrize("stuck, live, code, clean", [
    (1, 1, 1, True),    # the case: one replaced load whose process died held the exit
    (0, 1, 1, False),   # no load was replaced after a death: a model that would not unload is a real failure
    (1, 2, 1, False),   # more models held the exit than the supervisor replaced
    (1, 1, 2, False),   # another exit code
])
def test_a_stop_after_a_heal_is_clean_when_only_the_replaced_loads_held_the_exit(repository, tmp_path, stuck, live, code, clean):
    """Triton cannot unload a model version one of whose processes died (it waits for that process's answer), so a
    stop after such a heal ends with its exit timeout and code 1: that is a clean stop, and only that."""
    import types

    log = tmp_path / "tritonserver.log"
    log.write_text(_SHUTDOWN.format(live=live))
    server = TritonServer(repository, log_path=log)
    server.supervisor = types.SimpleNamespace(stuck_unloads=stuck)
    assert server._held_only_by_replaced_loads(code) is clean


# -- the container's entry point ---------------------------------------------------------------------------------------
def _dockerfile_instruction(name: str) -> list[str]:
    """The exec-form (JSON) arguments of the Dockerfile's ``name`` instruction (continuation lines joined)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line for line in text.splitlines() if line.startswith(f"{name} ")]
    assert len(lines) == 1, f"the Dockerfile has {len(lines)} {name} lines"
    return json.loads(lines[0][len(name):])


def test_the_containers_entry_point_serves_with_the_given_binary_and_backends(repository, tmp_path):
    """The Dockerfile's ENTRYPOINT, run here outside a container (no Docker on these machines): the container's
    /opt/tritonserver binary and its backends/ beside it are stood in for by the wheel's binary and a backend directory
    laid out as the container's (python/ with its stub), through --tritonserver and --backend-directory. It serves on
    every interface, reports the public model ready on HTTP, and a SIGTERM (docker stop) stops it cleanly (exit 0)."""
    entry = _dockerfile_instruction("ENTRYPOINT")
    assert entry[:3] == ["python3", "-m", "serving"]
    binary = entry[entry.index("--tritonserver") + 1]
    assert binary == "/opt/tritonserver/bin/tritonserver" and entry[entry.index("--repository") + 1] == "/models"
    for option in ("--grpc-address", "--http-address", "--metrics-address"):
        assert entry[entry.index(option) + 1] == "0.0.0.0", option
    for port in ("8000", "8001", "8002"):
        assert port in (ROOT / "Dockerfile").read_text().split("EXPOSE", 1)[1].splitlines()[0]

    root = _pytriton_root()
    backends = tmp_path / "backends"  # as /opt/tritonserver/backends: one folder per backend, the stub inside python/
    shutil.copytree(root / "tritonserver" / "backends" / "python", backends / "python", ignore=shutil.ignore_patterns("__pycache__"))
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    shutil.copy(root / "tritonserver" / "python_backend_stubs" / version / "triton_python_backend_stub", backends / "python")
    ports = [free_port() for _ in range(3)]
    here = {"python3": sys.executable, binary: str(root / "tritonserver" / "bin" / "tritonserver"), "/models": str(repository)}
    command = [here.get(arg, arg) for arg in entry] + [
        "--backend-directory", str(backends), "--grpc-port", str(ports[0]), "--http-port", str(ports[1]), "--metrics-port", str(ports[2])]
    # the container's libraries are where its binary expects them; the wheel's binary needs its own on the path
    env = {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join(filter(None, [str(root.parent / "nvidia_pytriton.libs"),
                                                                           os.environ.get("LD_LIBRARY_PATH")]))}
    log = tmp_path / "launcher.log"
    with open(log, "w") as stderr:
        launcher = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr, text=True)
    try:
        deadline, ready = time.monotonic() + 240, False
        while not (ready and "Triton is serving" in log.read_text()) and time.monotonic() < deadline and launcher.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ports[1]}/v2/models/facecamo/ready", timeout=2) as answer:
                    ready = answer.status == 200
            except OSError:
                time.sleep(0.5)
        assert ready and "Triton is serving" in log.read_text(), f"not serving ({launcher.poll()}): {log.read_text()[-3000:]}"
        assert "0.0.0.0" in set(listening_sockets(ports[1]).values()) | set(listening_sockets(ports[2]).values())
        with urllib.request.urlopen(f"http://127.0.0.1:{ports[2]}/metrics", timeout=10) as answer:
            assert b"nv_inference_request_success" in answer.read()
    finally:
        if launcher.poll() is None:
            launcher.send_signal(signal.SIGTERM)
        launcher.wait(timeout=120)
    errors = log.read_text()
    assert launcher.returncode == 0, errors[-3000:]
    assert "tritonserver stopped." in errors and "error:" not in errors, errors[-3000:]


def test_a_sigterm_while_starting_stops_the_server_it_was_starting(repository):
    """`docker stop` of a container still loading: the launcher's tritonserver runs in its own session, so the signal
    reaches only the launcher, which must stop it (it was left running, orphaned) and exit 0."""
    ports = [str(free_port()) for _ in range(3)]
    launcher = subprocess.Popen([sys.executable, "-m", "serving", "--repository", str(repository),
                                 "--grpc-port", ports[0], "--http-port", ports[1], "--metrics-port", ports[2]],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline, children = time.monotonic() + 60, []
    while not children and time.monotonic() < deadline and launcher.poll() is None:
        children = subprocess.run(["pgrep", "-P", str(launcher.pid), "tritonserver"], capture_output=True, text=True).stdout.split()
        time.sleep(0.1)
    assert children, "tritonserver was not started"
    launcher.send_signal(signal.SIGTERM)
    _, errors = launcher.communicate(timeout=120)
    assert launcher.returncode == 0 and "stopped while starting" in errors, errors[-3000:]
    left = subprocess.run(["pgrep", "-g", children[0]], capture_output=True, text=True).stdout.split()
    assert not left, f"processes left behind: {left}"
