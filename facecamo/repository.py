"""Reading an exported model repository without a server: its layout, its pipeline settings and its bank.

Layout (what ``make export`` writes and ``tritonserver --model-repository`` serves)::

    facecamo/config.pbtxt          the public model: python backend, the frame pipeline; ``parameters`` = settings
    facecamo/1/model.py            export/triton_models/facecamo.py
    facecamo/1/bank.npy, bank.json the appearance bank (float32 [K, C_app, 4, 1]) and where each entry came from
    facecamo/1/facecamo/           a copy of this package
    face_detector/                 CenterFace (when the detector is centerface)
    identity_encoder/, generator/  the networks (model.onnx, or model.plan for TensorRT)
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from facecamo import spec
from facecamo.pipeline import FramePipeline, PipelineSettings


class RepositoryError(RuntimeError):
    """Not a usable exported repository; the message says what is missing or wrong and how to fix it."""


def read_parameters(config: Path) -> dict[str, str]:
    """``parameters { key: ... value: { string_value: ... } }`` entries of a config.pbtxt (no protobuf needed)."""
    text = Path(config).read_text()
    return dict(re.findall(r'key:\s*"([^"]+)"\s*value:\s*\{\s*string_value:\s*"([^"]*)"\s*\}', text))


def pipeline_settings(root: Path) -> PipelineSettings:
    config = Path(root) / spec.ENSEMBLE / "config.pbtxt"
    if not config.is_file():
        raise RepositoryError(f"{root} is not an exported model repository (no {config}); run `make export`")
    try:
        return PipelineSettings.from_strings(read_parameters(config))
    except ValueError as error:
        raise RepositoryError(f"{config}: {error}") from None


def network_path(root: Path, name: str) -> Path:
    return Path(root) / name / "1" / "model.onnx"


def load_bank(folder: Path) -> np.ndarray:
    """float32 [K, C_app, 4, 1] from ``folder/bank.npy``, checked."""
    path = Path(folder) / "bank.npy"
    if not path.is_file():
        raise RepositoryError(f"the appearance bank {path} is missing; run `make export`")
    try:
        bank = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise RepositoryError(f"the appearance bank {path} cannot be read ({error}); run `make export`") from None
    if bank.ndim != 4 or len(bank) == 0 or bank.shape[2:] != (4, 1) or not np.all(np.isfinite(bank)):
        raise RepositoryError(f"the appearance bank {path} has shape {list(bank.shape)}, expected finite [K, C_app, 4, 1]")
    return bank.astype(np.float32)


def open_pipeline(root: Path, threads: int = 0) -> FramePipeline:
    """The whole pipeline of an exported repository on ONNX Runtime (the client's embedded engine).

    Raises:
        RepositoryError: naming what is missing or wrong (a corrupt or mismatched network included).
    """
    from facecamo.networks import ModelCheckError, OnnxNetworks

    root = Path(root)
    settings = pipeline_settings(root)
    names = [spec.IDENTITY_ENCODER, spec.GENERATOR] + ([spec.FACE_DETECTOR] if settings.detector == "centerface" else [])
    missing = [str(network_path(root, n)) for n in names if not network_path(root, n).is_file()]
    if missing:
        raise RepositoryError(f"{root} lacks {', '.join(missing)}: the embedded engine runs the ONNX files of a python or "
                              "onnxruntime export; run `make export`")
    bank = load_bank(root / spec.ENSEMBLE / "1")
    try:
        networks = OnnxNetworks(network_path(root, spec.IDENTITY_ENCODER), network_path(root, spec.GENERATOR),
                                network_path(root, spec.FACE_DETECTOR) if settings.detector == "centerface" else None, threads,
                                sizes={"C_app": int(bank.shape[1])})
    except ModelCheckError as error:
        raise RepositoryError(str(error)) from None
    if networks.sizes.get("C_app") not in (None, bank.shape[1]):
        raise RepositoryError(f"the appearance bank has {bank.shape[1]} channels but the generator takes {networks.sizes['C_app']}; "
                              "re-run `make export`")
    return FramePipeline(networks, bank, settings)
