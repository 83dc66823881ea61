"""Camouflage whole images in PyTorch: detect, align, generate, paste back every face. Evaluation runs this, so its
numbers describe what users get: the steps around the networks are the very functions the Triton python models and
the client's embedded engine run (:mod:`facecamo.pipeline`); only the networks run in PyTorch instead of ONNX.

Fail closed: a face that was detected but could not be aligned or generated is concealed (blurred) and reported
with status ``STATUS_FALLBACK``; it is never returned as it was.
"""

from __future__ import annotations

import numpy as np
import torch

from facecamo.align import FaceAligner
from facecamo.pipeline import FrameFaces, paste_frame, prepare_frame
from training.data import to_model_range
from training.models import CamouflageNet


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

    def prepare(self, image: np.ndarray) -> FrameFaces:
        """Detect and align every face of a uint8 RGB image (one placeholder row when there is none)."""
        return prepare_frame(self.aligner, image, bank_size=1)

    @torch.no_grad()
    def generate(self, faces: FrameFaces, appearance: torch.Tensor) -> np.ndarray:
        """float32 (N', 3, 112, 112) new faces in [-1, 1] for ``faces`` with codes float (R, C, 4, 1), face i taking
        code ``i % R``. A failure gives NaN, which :func:`facecamo.pipeline.paste_frame` conceals."""
        try:
            codes = appearance[torch.arange(len(faces.faces)) % len(appearance)].to(self.device)
            identity = self.net.identity_encoder(torch.from_numpy(faces.faces).to(self.device))
            return self.net.generator(identity, codes).cpu().numpy()
        except RuntimeError:
            return np.full(faces.faces.shape, np.nan, np.float32)

    def camouflage(self, image: np.ndarray, appearance: torch.Tensor, faces: FrameFaces | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Camouflage every face of a uint8 (H, W, 3) RGB image.

        Args:
            appearance: float (R, C, 4, 1) codes; face i gets code ``i % R``.
            faces: the result of :meth:`prepare`, to reuse one alignment for several appearances.
        Returns: (uint8 (H, W, 3) image, float32 (N, 4) boxes, int32 (N,) status as in :mod:`facecamo.spec`);
            the image comes back unchanged when it has no face.
        """
        faces = self.prepare(image) if faces is None else faces
        return paste_frame(np.ascontiguousarray(image), self.generate(faces, appearance), faces.affines, faces.boxes, faces.state)
