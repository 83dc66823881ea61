# SPDX-License-Identifier: Apache-2.0
"""Reading an exported model repository without a server: its layout, its pipeline settings and its bank.

Layout (what ``make export`` writes and ``tritonserver --model-repository`` serves)::

    facecamo/config.pbtxt          the public model: python backend, the frame pipeline; ``parameters`` = settings
                                   and ``design`` (:mod:`facecamo.design`)
    facecamo/1/model.py            export/triton_models/facecamo.py
    facecamo/1/bank.npy, bank.json the bank and where each entry came from: donors, uint8 [K, 112, 112, 3] (donor
                                   design), or appearance codes, float32 [K, C_app, 4, 1] (paper design)
    facecamo/1/facecamo/           a copy of this package
    face_detector/                 CenterFace (when the detector is centerface)
    identity_encoder/, generator/  the networks (model.onnx, or model.plan for TensorRT)
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from facecamo import spec
from facecamo.design import Design, design_named, design_of_bank
from facecamo.pipeline import FramePipeline
from facecamo.settings import PipelineSettings


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


def load_bank(folder: Path, parameters: dict[str, str] | None = None) -> tuple[np.ndarray, Design]:
    """``folder/bank.npy`` and the design it serves (the config's ``design`` parameter in ``parameters``; for a
    repository exported before the config named it, the bank's dtype), the bank checked against the design: donors,
    uint8 [K, 112, 112, 3], or appearance codes, float32 [K, C_app, 4, 1].

    Raises:
        RepositoryError: for a missing, unreadable or mismatched bank, or an unknown design, saying to re-export.
    """
    path = Path(folder) / "bank.npy"
    if not path.is_file():
        raise RepositoryError(f"the appearance bank {path} is missing; run `make export`")
    try:
        bank = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise RepositoryError(f"the appearance bank {path} cannot be read ({error}); run `make export`") from None
    name = (parameters or {}).get("design")
    try:
        design = design_named(name) if name else design_of_bank(bank)
        return design.bank_for_serving(bank), design
    except ValueError as error:
        raise RepositoryError(f"{path}: {error}; run `make export`") from None


LIKENESS_FILE = "bank_likeness.npy"
"""Beside bank.npy: float32 [K, D] the identity encoder's unit vectors of the donors (the export's), by which a new face
gets the donor most like it. A repository exported without it gives the next free donor, as before."""


MEMBERS_FILE = "bank_members.npy"
"""Beside bank.npy: float32 [K, M, D] the identity encoder's unit vectors of the portraits blended into each donor."""


def _vectors(path: Path, bank: np.ndarray, ndim: int) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        vectors = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise RepositoryError(f"{path} cannot be read ({error}); run `make export`") from None
    if vectors.ndim != ndim or len(vectors) != len(bank) or not np.issubdtype(vectors.dtype, np.floating) \
            or not np.all(np.isfinite(vectors)):
        raise RepositoryError(f"{path} holds {vectors.dtype} {list(vectors.shape)}, not one finite vector per entry of the "
                              f"{len(bank)}-entry bank; run `make export`")
    return vectors.astype(np.float32)


def load_likeness(folder: Path, bank: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``folder/bank_likeness.npy`` (float32 [K, D]) and ``folder/bank_members.npy`` (float32 [K, M, D]), each
    checked against ``bank``, or None where a file is absent (a repository exported before them; member vectors are
    read only beside likeness vectors).

    Raises:
        RepositoryError: for an unreadable or mismatched file, saying to re-export.
    """
    likeness = _vectors(Path(folder) / LIKENESS_FILE, bank, 2)
    return likeness, _vectors(Path(folder) / MEMBERS_FILE, bank, 3) if likeness is not None else None


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
    bank, design = load_bank(root / spec.ENSEMBLE / "1", read_parameters(root / spec.ENSEMBLE / "config.pbtxt"))
    # What the design and its bank imply about the generator's APPEARANCE input (a donor target, or the code).
    implied = design.appearance_sizes(None if design.donors else int(bank.shape[1]))
    try:
        networks = OnnxNetworks(network_path(root, spec.IDENTITY_ENCODER), network_path(root, spec.GENERATOR),
                                network_path(root, spec.FACE_DETECTOR) if settings.detector == "centerface" else None, threads,
                                sizes=implied)
    except ModelCheckError as error:
        raise RepositoryError(str(error)) from None
    found = {key: networks.sizes.get(key) for key in implied}
    if any(value not in (None, implied[key]) for key, value in found.items()):
        raise RepositoryError(f"the bank implies a generator input of {list(implied.values())} but the generator takes "
                              f"{list(found.values())}; re-run `make export`")
    likeness, members = load_likeness(root / spec.ENSEMBLE / "1", bank)
    return FramePipeline(networks, bank, settings, design=design, likeness=likeness, members=members)
