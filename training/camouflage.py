# SPDX-License-Identifier: Apache-2.0
"""Camouflage whole images with the networks in PyTorch, through the one frame pipeline
(:class:`facecamo.pipeline.FramePipeline`) that the Triton model and the client's embedded engine run: the same
detector and settings (the served defaults, :class:`facecamo.settings.PipelineSettings`), alignment, output checks,
paste-back and failure policy. Evaluation runs this, so its numbers describe what users get; only the identity encoder
and generator run in PyTorch instead of ONNX (the CenterFace detector runs on ONNX Runtime in both).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from facecamo.pipeline import FramePipeline
from facecamo.settings import PipelineSettings
from facecamo.stages import PreparedFrame
from facecamo.donor import blend_donors
from training.data import to_model_range

ROOT = Path(__file__).resolve().parents[1]
# The CenterFace detector rewritten for the pipeline: made by the export side (``python -m export.detector PATH``, the
# Makefile's rule for this file), never by training, so that training never imports the layer that imports it.
DETECTOR_ONNX = ROOT / "build" / "onnx" / "face_detector.onnx"


class TorchNetworks:
    """:class:`facecamo.networks.Networks` over a network of either design (and ONNX Runtime for the detector)."""

    def __init__(self, net: torch.nn.Module, device: torch.device, detector: Path | None = None) -> None:
        from facecamo.networks import OnnxNetworks

        self.net, self.device = net, device
        self._detector = OnnxNetworks(face_detector=detector) if detector is not None else None

    @torch.no_grad()
    def encode_identity(self, faces: np.ndarray) -> np.ndarray:
        return self.net.identity_encoder(torch.from_numpy(faces).to(self.device)).float().cpu().numpy()

    @torch.no_grad()
    def generate(self, identity: np.ndarray, appearance: np.ndarray) -> np.ndarray:
        codes = torch.from_numpy(np.ascontiguousarray(appearance)).to(self.device)
        return self.net.generator(torch.from_numpy(identity).to(self.device), codes).float().cpu().numpy()

    def detect(self, images: np.ndarray) -> dict[str, np.ndarray]:
        if self._detector is None:
            raise RuntimeError("no detector network: the pipeline settings name a dlib detector")
        return self._detector.detect(images)


class TorchCamouflager:
    """Args:
        net: an eval-mode network of either design (see :func:`training.weights.load_inference_net`).
        settings: the pipeline's settings (default: what the export serves).
        detector: the rewritten CenterFace ONNX file, needed with ``settings.detector == "centerface"`` (the default).

    Raises:
        FileNotFoundError: for a CenterFace pipeline whose detector file does not exist (saying how to make it).
    """

    def __init__(self, net: torch.nn.Module, settings: PipelineSettings | None = None, device: str | torch.device = "cpu",
                 detector: Path = DETECTOR_ONNX) -> None:
        self.net = net.eval()
        self.device = torch.device(device)
        settings = settings or PipelineSettings()
        if settings.detector == "centerface" and not Path(detector).is_file():
            raise FileNotFoundError(f"the face detector {detector} does not exist; make it with "
                                    f"`python -m export.detector {detector}` (`make eval` does)")
        networks = TorchNetworks(self.net, self.device, Path(detector) if settings.detector == "centerface" else None)
        self.design = self.net.design
        # The bank is unused here (evaluation passes each reference explicitly), but it must be the design's.
        bank = (np.zeros((1, 112, 112, 3), np.uint8) if self.design.donors else np.zeros((1, 1, 4, 1), np.float32))
        self.pipeline = FramePipeline(networks, bank, settings, design=self.design)

    @property
    def donor_design(self) -> bool:
        """The network is of a design whose bank holds donors (references are blended by their landmarks)."""
        return self.design.donors

    @torch.no_grad()
    def appearance_codes(self, reference_crops: np.ndarray, landmarks: np.ndarray | None = None,
                         per_blend: int = 3) -> np.ndarray:
        """What each reference gives every face it is used for.

        Args:
            reference_crops: uint8 (R, 112, 112, 3) aligned reference faces of other identities.
            landmarks: float (R, 68, 2) their landmarks in crop pixels (needed by the donor design).
        Returns: donor design: uint8 (R // per_blend, 112, 112, 3) donors, each a blend of ``per_blend`` references
            (as the served bank's entries are); paper design: float32 (R, C, 4, 1) appearance codes.
        """
        if self.donor_design:
            if landmarks is None:
                raise ValueError("the donor design blends references by their landmarks; pass them")
            return np.stack([blend_donors(reference_crops[k : k + per_blend], landmarks[k : k + per_blend])
                             for k in range(0, len(reference_crops) - per_blend + 1, per_blend)])
        faces = to_model_range(torch.from_numpy(np.ascontiguousarray(reference_crops))).to(self.device)
        return self.net.appearance_encoder(faces).float().cpu().numpy()

    def prepare(self, image: np.ndarray) -> PreparedFrame:
        """Detect and align every face of a uint8 RGB image (reusable for several appearances)."""
        return self.pipeline.prepare(image)

    def camouflage(self, image: np.ndarray, appearance: np.ndarray, faces: PreparedFrame | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Camouflage every face of a uint8 (H, W, 3) RGB image with one reference.

        Args:
            appearance: one entry of :meth:`appearance_codes` (keeping its first axis) given to every face.
            faces: the result of :meth:`prepare`, to reuse one alignment for several appearances.
        Returns: (uint8 (H, W, 3) image, float32 (N, 4) boxes, int32 (N,) status as in :mod:`facecamo.spec`);
            the image comes back unchanged when it has no face.
        """
        prepared = self.prepare(image) if faces is None else faces
        result = self.pipeline.complete(prepared, np.asarray(appearance)[:1])
        return result.frame, result.boxes, result.status
