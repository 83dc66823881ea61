"""Shared fixtures: committed portraits, a tiny prepared dataset built from them, paths to ../shared."""

from __future__ import annotations

import os
import subprocess
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


# -- a real Triton server for the serving and client tests (one per session) -------------------------------------
def serving_settings():
    """The served defaults (the CenterFace detector and all), so the tests exercise what users get."""
    from facecamo.pipeline import PipelineSettings

    return PipelineSettings()


def shm_segments() -> set[str]:
    return {p.name for p in Path("/dev/shm").glob("*triton*")} if Path("/dev/shm").is_dir() else set()


@pytest.fixture(scope="session")
def tiny_checkpoint(prepared, tmp_path_factory) -> Path:
    """A one-step model of the shipped (donor) design at test size: what the served-repository tests serve."""
    from training.train import main as train_main

    run = tmp_path_factory.mktemp("serve_run")
    assert train_main(["--preset", "tiny_donor", "--data", str(prepared), "--run-dir", str(run), "--steps", "1"]) == 0
    return next((run / "checkpoints").glob("*.pt"))


@pytest.fixture(scope="session")
def repository(tiny_checkpoint, tmp_path_factory) -> Path:
    from export.__main__ import run_export

    out = tmp_path_factory.mktemp("repository")
    run_export(tiny_checkpoint, out, "python", PORTRAITS, serving_settings(), tmp_path_factory.mktemp("onnx"))
    return out


@pytest.fixture(scope="session")
def server(repository):
    pytest.importorskip("pytriton", reason="nvidia-pytriton (requirements/serve.txt) provides the tritonserver binary")
    from export.triton_server import TritonServer

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
