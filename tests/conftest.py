# SPDX-License-Identifier: Apache-2.0
"""Shared fixtures: committed portraits, a tiny prepared dataset built from them, paths to ../shared; and the note of
which tests look at ../shared (``FACECAMO_RECORD_SHARED_USE``), which ``.ci/run`` re-runs from a clone without it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PORTRAITS = ROOT / "assets" / "portraits"
SHARED = Path(os.environ.get("FACECAMO_SHARED", ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def portrait_path() -> Path:
    return PORTRAITS / "congress_B000589.jpg"


@pytest.fixture(scope="session")
def portrait(portrait_path) -> np.ndarray:
    from facecamo.align import load_rgb

    return load_rgb(str(portrait_path))


def make_identity_folders(target: Path, identities: int = 6, per_identity: int = 3) -> Path:
    """LFW-style folders from the committed portraits: each portrait is one identity, its variants (mirror,
    slight zoom, brightness) the identity's other photos."""
    portraits = sorted(PORTRAITS.glob("congress_*.jpg"))[:identities]
    for portrait in portraits:
        name = portrait.stem
        folder = target / name
        folder.mkdir(parents=True, exist_ok=True)
        image = cv2.imread(str(portrait))
        variants = [image, image[:, ::-1], cv2.convertScaleAbs(image, alpha=1.1, beta=10)]
        for index, variant in enumerate(variants[:per_identity]):
            cv2.imwrite(str(folder / f"{name}_{index + 1:04d}.jpg"), np.ascontiguousarray(variant))
    return target


@pytest.fixture(scope="session")
def identity_folders(tmp_path_factory) -> Path:
    return make_identity_folders(tmp_path_factory.mktemp("identities") / "images")


@pytest.fixture(scope="session")
def prepared(tmp_path_factory, identity_folders) -> Path:
    """A prepared dataset (all identities in the training split) for training tests."""
    from training.prepare import prepare

    out = tmp_path_factory.mktemp("prepared")
    prepare(identity_folders, out, workers=1, test_fraction=0.0)
    return out


def require_shared(relative: str) -> Path:
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"{path} is absent: this test needs the project's shared data (../shared/{relative})")
    return path


# -- which tests look at ../shared ---------------------------------------------------------------------------------
class SharedUseRecorder:
    """Notes every test that opens, lists or checks for a path under ../shared (or ``$FACECAMO_SHARED``) and writes
    their node ids to ``out``, one a line, when the session ends. ``.ci/run`` runs the suite with it, then runs those
    tests again from a clone that has no ../shared beside it, as a user's has not: each must pass or skip with its
    reason. Seen: Python's opens and listings (an audit hook) and ``os.stat`` (``Path.exists``, ``is_file``: checks that
    open nothing), in this process; not a native library opening a file itself, nor a subprocess."""

    EVENTS = {"open", "os.listdir", "os.scandir", "glob.glob"}

    def __init__(self, out: Path) -> None:
        self.out = out
        folders = {SHARED, ROOT.parent / "shared"}  # the presets name ../shared itself, whatever $FACECAMO_SHARED says
        self.prefixes = tuple({os.path.join(os.path.abspath(f), "") for f in folders} |
                              {os.path.join(os.path.realpath(f), "") for f in folders})
        self.current: str | None = None
        self.users: set[str] = set()
        self._stat = os.stat
        os.stat = self._noting_stat
        sys.addaudithook(self._audit)

    def _note(self, path) -> None:
        if self.current is None or not isinstance(path, (str, bytes, os.PathLike)):
            return
        try:
            where = os.path.join(os.path.abspath(os.fsdecode(path)), "")
        except (TypeError, ValueError, OSError):
            return
        if where.startswith(self.prefixes):
            self.users.add(self.current)

    def _noting_stat(self, path, *args, **kwargs):
        self._note(path)
        return self._stat(path, *args, **kwargs)

    def _audit(self, event: str, args: tuple) -> None:
        if event in self.EVENTS and args:
            self._note(args[0])

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        self.current = item.nodeid
        yield
        self.current = None

    def pytest_sessionfinish(self, session) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text("".join(f"{node}\n" for node in sorted(self.users)))


def pytest_configure(config) -> None:
    if os.environ.get("FACECAMO_RECORD_SHARED_USE"):
        config.pluginmanager.register(SharedUseRecorder(Path(os.environ["FACECAMO_RECORD_SHARED_USE"])), "facecamo-shared-use")


# -- a real Triton server for the serving and client tests (one per session) -------------------------------------
def serving_settings():
    """The served defaults (the CenterFace detector and all), so the tests exercise what users get."""
    from facecamo.settings import PipelineSettings

    return PipelineSettings()


def shm_segments() -> set[str]:
    return {p.name for p in Path("/dev/shm").glob("*triton*")} if Path("/dev/shm").is_dir() else set()


@pytest.fixture(scope="session")
def tiny_checkpoint(prepared, tmp_path_factory) -> Path:
    """A one-step model of the donor design at test size: what the served-repository tests serve. Its AdaIN G changes
    every pixel it pastes, which the pipeline tests' leak checks rely on; the shipped injection G has the same tensors,
    bank and pipeline, and its export is parity-checked in tests/test_injection.py (a one-step injection G returns the
    bare donor target, which matches the source exactly on some pixels by chance)."""
    from training.train import main as train_main

    run = tmp_path_factory.mktemp("serve_run")
    assert train_main(["--preset", "tiny_donor", "--data", str(prepared), "--run-dir", str(run), "--steps", "1"]) == 0
    return next((run / "checkpoints").glob("*.pt"))


@pytest.fixture(scope="session")
def detector_onnx(tmp_path_factory) -> Path:
    """The served CenterFace detector as the export makes it, for the PyTorch path (training never makes it itself)."""
    from export.detector import export_detector

    return export_detector(tmp_path_factory.mktemp("detector") / "face_detector.onnx", check_parity=False)


@pytest.fixture(scope="session")
def repository(tiny_checkpoint, tmp_path_factory) -> Path:
    from export.__main__ import run_export

    out = tmp_path_factory.mktemp("repository")
    run_export(tiny_checkpoint, out, "python", PORTRAITS, serving_settings(), tmp_path_factory.mktemp("onnx"))
    return out


@pytest.fixture(scope="session")
def server(repository):
    pytest.importorskip("pytriton", reason="nvidia-pytriton (requirements/serve.txt) provides the tritonserver binary")
    from serving.server import TritonServer

    before = shm_segments()
    triton = TritonServer(repository).start()
    yield triton
    pid = triton.process.pid
    assert triton.stop() == 0, triton.log_tail()
    leftovers = subprocess.run(["pgrep", "-g", str(pid)], capture_output=True, text=True).stdout.split()
    assert not leftovers, f"processes left behind: {leftovers}"
    assert shm_segments() - before == set(), "shared-memory segments left behind"


@pytest.fixture(scope="session")
def client(server):
    grpcclient = pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] is needed to talk to the server")
    with grpcclient.InferenceServerClient(server.grpc_url) as connection:
        yield connection


@pytest.fixture(scope="session")
def portrait_rgb() -> np.ndarray:
    """The committed portrait most tests camouflage (uint8 RGB)."""
    from facecamo.align import load_rgb

    return load_rgb(str(PORTRAITS / "congress_B000589.jpg"))


@pytest.fixture(scope="module")
def sdk(server):
    """The SDK's gRPC client against the session's server."""
    from facecamo_client import CamouflageClient

    with CamouflageClient(server.grpc_url, timeout_s=120) as client:
        yield client


@pytest.fixture(scope="module")
def embedded(repository):
    """The SDK's embedded engine on the session's exported repository."""
    from facecamo_client import EmbeddedEngine

    return EmbeddedEngine(repository)
