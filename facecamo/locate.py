# SPDX-License-Identifier: Apache-2.0
"""Finding faces in a frame for the pipeline: the detectors behind one interface (dlib's HOG/CNN or CenterFace through
the networks), dim frames brightened for them, and the served alignment of the face in a box (which the export's
donor bank uses too, so donors and served faces are aligned alike).

A detector here is called with a uint8 (H, W, 3) RGB frame and returns :class:`facecamo.align.Detection` boxes in frame
pixels; its ``landmark_box`` maps a box to the rectangle dlib's landmark predictor expects.
"""

from __future__ import annotations

import numpy as np

from facecamo.align import Detection, FaceDetector, FivePointLandmarkPredictor, LandmarkPredictor, alignment_affine, warp_face
from facecamo.geometry import transform_points
from facecamo.networks import Networks
from facecamo.settings import PipelineSettings


class DlibDetector:
    """dlib's HOG or CNN detector behind the pipeline's detector interface (its boxes are what the landmark
    predictor was trained on, so :meth:`landmark_box` is the identity)."""

    def __init__(self, settings: PipelineSettings) -> None:
        self._detector = FaceDetector(settings.detector, settings.upsample, settings.min_score)

    def __call__(self, frame: np.ndarray) -> list[Detection]:
        return self._detector(frame)

    @staticmethod
    def landmark_box(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        return box


class CenterFaceBoxes:
    """The CenterFace detector behind the pipeline's detector interface; its boxes are mapped to the rectangle
    dlib's landmark predictor expects (:func:`facecamo.detect.landmark_box`)."""

    def __init__(self, settings: PipelineSettings, networks: Networks) -> None:
        from facecamo.detect import CENTERFACE_DEFAULTS, CenterFaceDetector

        threshold = CENTERFACE_DEFAULTS["threshold"] if settings.detector_threshold is None else settings.detector_threshold
        self._detector = CenterFaceDetector(networks.detect, threshold=threshold, input_scale=settings.detector_input_scale)

    def __call__(self, frame: np.ndarray) -> list[Detection]:
        return self._detector(frame)

    @staticmethod
    def landmark_box(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        from facecamo.detect import landmark_box

        return landmark_box(Detection(box, 1.0))


def align_in_box(frame: np.ndarray, box: tuple[float, float, float, float],
                 landmarks: LandmarkPredictor | FivePointLandmarkPredictor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The served alignment of the face in ``box`` (the rectangle the landmark model expects: a detector's
    ``landmark_box``): (float64 (2, 3) frame-to-crop affine, uint8 (112, 112, 3) crop, float64 (68, 2) landmarks in
    crop pixels). The export aligns the donor bank's portraits with it too, so donors and served faces match.

    Raises:
        ValueError: for degenerate landmarks."""
    points = landmarks(frame, box)
    affine = alignment_affine(points)
    return affine, warp_face(frame, affine), transform_points(affine, points)


DIM_TARGET_LUMA = 0.45
"""The mean luma (share of 255) a dim frame is lifted to for detection: a lit indoor scene's."""


def brightened_for_detection(frame: np.ndarray, dim_luma: float) -> np.ndarray:
    """uint8 (H, W, 3) RGB: ``frame`` itself when its mean luma is ``dim_luma`` (0-255) or more, else ``frame``
    through the gamma curve that lifts its mean luma to :data:`DIM_TARGET_LUMA` (a lookup table: a millisecond at
    640x480). Gamma keeps every pixel where it is and the order of brightness, so boxes found on it are the frame's.
    On the sample clips darkened to gamma 2.2 at 40% brightness CenterFace found 411 of the 427 faces it finds in
    person_video_02 lit (every 5th frame), and 420 on the brightened copy; 78 and 79 of 80 in new_face_video-90."""
    if dim_luma <= 0:
        return frame
    sample = frame[::4, ::4].astype(np.float32)
    mean = float((0.299 * sample[..., 0] + 0.587 * sample[..., 1] + 0.114 * sample[..., 2]).mean())
    if mean >= dim_luma:
        return frame
    gamma = np.log(DIM_TARGET_LUMA) / np.log(max(mean, 0.5) / 255.0)
    table = np.clip(np.rint(255.0 * (np.arange(256) / 255.0) ** gamma), 0, 255).astype(np.uint8)
    return table[frame]


class LowLightDetection:
    """A detector that is shown dim frames brightened (:func:`brightened_for_detection`); boxes as the detector's."""

    def __init__(self, detector: "DlibDetector | CenterFaceBoxes", dim_luma: float) -> None:
        self.detector, self.dim_luma = detector, dim_luma

    def __call__(self, frame: np.ndarray) -> list[Detection]:
        return self.detector(brightened_for_detection(frame, self.dim_luma))

    def landmark_box(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        return self.detector.landmark_box(box)


def make_detector(settings: PipelineSettings, networks: Networks) -> LowLightDetection:
    """The detector the settings name (CenterFace runs through ``networks.detect``), shown dim frames brightened."""
    detector = CenterFaceBoxes(settings, networks) if settings.detector == "centerface" else DlibDetector(settings)
    return LowLightDetection(detector, settings.dim_luma)
