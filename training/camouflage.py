"""Camouflage whole images in PyTorch: detect, align, generate, paste back every face. Evaluation runs this, so its
numbers describe what users get; serving runs the same steps from exported models.

Fail closed: a face that was detected but could not be aligned or generated is concealed (blurred) and reported
with status ``"fallback"``; it is never returned as it was.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from facecamo.align import AlignedFace, Detection, FaceAligner, as_rgb_uint8
from facecamo.paste import conceal_box, conceal_face, paste_face_inplace
from training.data import to_model_range, to_uint8
from training.models import CamouflageNet


@dataclass
class FaceOutcome:
    """What happened to one detected face: ``status`` is ``"camouflaged"`` or ``"fallback"`` (concealed by blur,
    ``reason`` says why); ``face`` holds the alignment when it succeeded."""

    detection: Detection
    status: str
    reason: str = ""
    face: AlignedFace | None = None


class TorchCamouflager:
    """Args:
        net: an eval-mode :class:`CamouflageNet` (see :func:`training.weights.load_inference_net`).
        aligner: detector + landmarks + alignment (default HOG, no upsampling).
    """

    def __init__(self, net: CamouflageNet, aligner: FaceAligner | None = None, device: str | torch.device = "cpu") -> None:
        self.net = net.eval()
        self.aligner = aligner or FaceAligner()
        self.device = torch.device(device)

    @torch.no_grad()
    def appearance_codes(self, reference_crops: np.ndarray) -> torch.Tensor:
        """uint8 (R, 112, 112, 3) aligned reference faces -> float (R, C, 4, 1) appearance codes."""
        return self.net.appearance_encoder(to_model_range(torch.from_numpy(np.ascontiguousarray(reference_crops))).to(self.device))

    @torch.no_grad()
    def generate(self, crops: np.ndarray, appearance: torch.Tensor) -> np.ndarray:
        """uint8 (N, 112, 112, 3) aligned sources and float (N, C, 4, 1) codes -> uint8 (N, 112, 112, 3) new faces.

        Raises:
            FloatingPointError: if the generator produced non-finite values (the caller falls back).
        """
        images = to_model_range(torch.from_numpy(np.ascontiguousarray(crops))).to(self.device)
        faces = self.net.generator(self.net.identity_encoder(images), appearance.to(self.device))
        if not torch.isfinite(faces).all():
            raise FloatingPointError("generator output is not finite")
        return to_uint8(faces).cpu().numpy()

    def align(self, image: np.ndarray, detections: list[Detection] | None = None) -> list[FaceOutcome]:
        """Detect (unless ``detections`` are given) and align every face; alignment failures become fallbacks."""
        rgb = as_rgb_uint8(image)
        outcomes = []
        for detection in self.aligner.detector(rgb) if detections is None else detections:
            try:
                outcomes.append(FaceOutcome(detection, "pending", face=self.aligner.align_box(rgb, detection)))
            except ValueError as error:
                outcomes.append(FaceOutcome(detection, "fallback", reason=f"alignment failed: {error}"))
        return outcomes

    def camouflage(self, image: np.ndarray, appearance: torch.Tensor, outcomes: list[FaceOutcome] | None = None
                   ) -> tuple[np.ndarray, list[FaceOutcome]]:
        """Camouflage every face of a uint8 RGB image.

        Args:
            image: uint8 (H, W, 3) RGB (see :func:`facecamo.align.as_rgb_uint8`).
            appearance: float (R, C, 4, 1) codes; face i gets code ``i % R``.
            outcomes: faces already found by :meth:`align` (to reuse one alignment for several appearances).
        Returns: the new uint8 (H, W, 3) image (the input unchanged when there is no face) and one outcome per face.
        """
        rgb = as_rgb_uint8(image)
        outcomes = self.align(rgb) if outcomes is None else outcomes
        out = rgb.copy()
        aligned = [o for o in outcomes if o.face is not None]
        results = [FaceOutcome(o.detection, o.status, o.reason, o.face) for o in outcomes]
        if aligned:
            codes = appearance[torch.arange(len(aligned)) % len(appearance)]
            try:
                faces = self.generate(np.stack([o.face.crop for o in aligned]), codes)
            except (FloatingPointError, RuntimeError) as error:
                faces, failure = None, f"generation failed: {error}"
        for result in results:
            if result.face is None:
                conceal_box(out, result.detection.box)
                result.status = "fallback"
        if aligned:
            index = 0
            for result in results:
                if result.face is None:
                    continue
                if faces is None:
                    conceal_face(out, result.face.crop, result.face.affine)
                    result.status, result.reason = "fallback", failure
                else:
                    paste_face_inplace(out, faces[index], result.face.affine)
                    result.status = "camouflaged"
                index += 1
        return out, results
