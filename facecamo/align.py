# SPDX-License-Identifier: Apache-2.0
"""Face detection, landmarks and the paper's alignment (Li et al., ICPR 2020, Sec. IV-A).

The recipe, applied to dlib's 68 landmarks:

1. rotate upright so that the line through the two eye centres is horizontal;
2. centre x on the mid-point of the leftmost and rightmost landmarks;
3. scale so that the eye line (mean of the 12 eye landmarks) lies at 45% of the height from the top and
   the mouth line (mean of the 20 mouth landmarks) at 25% from the bottom of a 128x128 frame;
4. centre-crop 112x112.

Two landmark models give those 68 points (:func:`landmark_predictor`, the pipeline's ``landmarks`` setting):
``dlib68``, dlib's 68-point model (trained on iBUG 300-W, whose terms exclude commercial use), and ``dlib5``, dlib's
public-domain 5-point model with a fitted linear map from its 5 points to the 68 (:class:`FivePointLandmarkPredictor`):
the path for commercial use.

Everything works on **uint8 RGB** images of shape (H, W, 3); grayscale (H, W) or (H, W, 1) and RGBA
(H, W, 4) are converted. Callers holding OpenCV's BGR convert first (``cv2.cvtColor(img, cv2.COLOR_BGR2RGB)``).
Affines are 2x3 float64 matrices mapping *source image* pixel coordinates to *crop* coordinates, in
OpenCV's convention (pixel centres at integer coordinates), so ``cv2.invertAffineTransform`` of one pastes a
crop back.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Literal, Sequence

import cv2
import dlib
import numpy as np

from facecamo.dlib_models import CNN_DETECTOR, LANDMARKS_5, LANDMARKS_68, dlib_model_path
from facecamo.geometry import similarity_affine, transform_points

ALIGN_FRAME = 128
"""Side of the aligned frame the recipe is defined on."""
ALIGN_CROP = 112
"""Side of the centre crop the networks see."""
EYE_LINE_FROM_TOP = 0.45
MOUTH_LINE_FROM_BOTTOM = 0.25

LEFT_EYE = slice(36, 42)
RIGHT_EYE = slice(42, 48)
EYES = slice(36, 48)
MOUTH = slice(48, 68)


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Validate an image and return it as a C-contiguous uint8 RGB array of shape (H, W, 3).

    Accepts uint8 arrays shaped (H, W) (grayscale), (H, W, 1), (H, W, 3) (RGB) or (H, W, 4) (RGBA; alpha dropped).

    Raises:
        ValueError: for anything else, saying what was expected.
    """
    if not isinstance(image, np.ndarray):
        raise ValueError(f"expected a numpy array (uint8 RGB, shape HxWx3), got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(
            f"expected dtype uint8 (0..255 RGB), got {image.dtype}; convert with np.clip(x, 0, 255).astype(np.uint8)"
        )
    if image.ndim not in (2, 3):
        raise ValueError(f"expected an image of rank 2 (HxW) or 3 (HxWxC), got rank {image.ndim} with shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"expected a non-empty image, got shape {image.shape}")
    if image.ndim == 2:
        return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_GRAY2RGB))
    channels = image.shape[2]
    if channels == 1:
        return np.ascontiguousarray(cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2RGB))
    if channels == 3:
        return np.ascontiguousarray(image)
    if channels == 4:
        return np.ascontiguousarray(image[:, :, :3])
    raise ValueError(f"expected 1, 3 (RGB) or 4 (RGBA) channels, got {channels} with shape {image.shape}")


@dataclass(frozen=True)
class Detection:
    """A face box in image pixels: ``box`` = (left, top, right, bottom), exclusive right/bottom; ``score`` is the
    detector's confidence (HOG: SVM margin, about 0 at its default threshold; CNN: mmod confidence; CenterFace: heatmap
    peak in 0..1). ``landmarks5``: five (x, y) points when the detector gives them (CenterFace: the eye, the other eye,
    nose tip, mouth corner, other mouth corner, image-left first), else None."""

    box: tuple[float, float, float, float]
    score: float
    landmarks5: tuple[tuple[float, float], ...] | None = None

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


class FaceDetector:
    """dlib face detector: the HOG+SVM frontal detector (fast) or the CNN (mmod) detector (slow, more robust).

    Args:
        method: ``"hog"`` or ``"cnn"``.
        upsample: times the image is doubled before detection; HOG misses faces under about 80 px
            without it, and each step costs about 4x the time.
        min_score: faces scoring below this are dropped. HOG's scores are SVM margins (0 is dlib's default
            threshold; raise it to drop false positives), CNN's are mmod confidences.
        max_faces: keep at most this many, best scores first (None: all).
    """

    def __init__(
        self,
        method: Literal["hog", "cnn"] = "hog",
        upsample: int = 0,
        min_score: float = 0.0,
        max_faces: int | None = None,
    ) -> None:
        if method not in ("hog", "cnn"):
            raise ValueError(f"detector method must be 'hog' or 'cnn', got {method!r}")
        if upsample < 0:
            raise ValueError(f"upsample must be >= 0, got {upsample}")
        self.method = method
        self.upsample = int(upsample)
        self.min_score = float(min_score)
        self.max_faces = max_faces
        if method == "hog":
            self._hog = dlib.get_frontal_face_detector()
        else:
            self._cnn = dlib.cnn_face_detection_model_v1(str(dlib_model_path(CNN_DETECTOR)))

    def __call__(self, image: np.ndarray) -> list[Detection]:
        """Detect faces in a uint8 RGB image (see :func:`as_rgb_uint8`); best score first, [] if none."""
        rgb = as_rgb_uint8(image)
        found: list[Detection] = []
        if self.method == "hog":
            # adjust_threshold below 0 so that min_score (possibly negative) decides, not dlib's default.
            rects, scores, _ = self._hog.run(rgb, self.upsample, min(self.min_score, 0.0))
            for rect, score in zip(rects, scores):
                found.append(Detection(_rect_to_box(rect), float(score)))
        else:
            for hit in self._cnn(rgb, self.upsample):
                found.append(Detection(_rect_to_box(hit.rect), float(hit.confidence)))
        found = [d for d in found if d.score >= self.min_score]
        found.sort(key=lambda d: d.score, reverse=True)
        return found[: self.max_faces] if self.max_faces is not None else found


def _rect_to_box(rect: "dlib.rectangle") -> tuple[float, float, float, float]:
    return (float(rect.left()), float(rect.top()), float(rect.right() + 1), float(rect.bottom() + 1))


def _dlib_rectangle(box: Sequence[float]) -> "dlib.rectangle":
    """dlib's rectangle for a (left, top, right, bottom) box.

    Raises:
        ValueError: if the box is not four finite numbers with right > left and bottom > top.
    """
    box_array = np.asarray(box, dtype=np.float64)
    if box_array.shape != (4,) or not np.all(np.isfinite(box_array)):
        raise ValueError(f"expected a box of 4 finite numbers (left, top, right, bottom), got {box!r}")
    left, top, right, bottom = box_array
    if right <= left or bottom <= top:
        raise ValueError(f"box must have right > left and bottom > top, got {tuple(box_array)}")
    return dlib.rectangle(int(round(left)), int(round(top)), int(round(right)) - 1, int(round(bottom)) - 1)


class LandmarkPredictor:
    """dlib's 68-point shape predictor (``shape_predictor_68_face_landmarks.dat``; iBUG 300-W: not for commercial use)."""

    name = "dlib68"

    def __init__(self) -> None:
        self._predictor = dlib.shape_predictor(str(dlib_model_path(LANDMARKS_68)))

    def __call__(self, image: np.ndarray, box: Sequence[float]) -> np.ndarray:
        """Return the 68 landmarks of the face in ``box`` (left, top, right, bottom) as float64 (68, 2) x, y pixels.

        Raises:
            ValueError: if the box is not four finite numbers with right > left and bottom > top.
        """
        shape = self._predictor(as_rgb_uint8(image), _dlib_rectangle(box))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


@functools.lru_cache(maxsize=1)
def _shipped_five_point_map() -> dict[str, np.ndarray]:
    from facecamo import landmarks5

    return {"mean5": np.asarray(landmarks5.MEAN5), "weights": np.asarray(landmarks5.WEIGHTS),
            "bias": np.asarray(landmarks5.BIAS).reshape(-1)}


def five_to_sixty_eight(points5: np.ndarray, arrays: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """float64 (68, 2): the 68-point layout estimated from dlib's 5 points (float (5, 2), image pixels) by the fitted
    map of :mod:`facecamo.landmarks5` (or ``arrays``: ``mean5``, ``weights``, ``bias`` as
    :func:`training.landmarks5.fit` returns them).

    Raises:
        ValueError: for non-finite points or eye corners that coincide (no scale to fit).
    """
    arrays = arrays or _shipped_five_point_map()
    points = np.asarray(points5, np.float64)
    if points.shape != (5, 2) or not np.all(np.isfinite(points)):
        raise ValueError(f"expected 5 finite (x, y) landmarks, got shape {points.shape}")
    if np.linalg.norm(points[0] - points[2]) < 1e-3:
        raise ValueError("degenerate landmarks: the eye corners coincide")
    to_mean = similarity_affine(points, arrays["mean5"])
    normalised = transform_points(to_mean, points)
    estimate = (arrays["bias"] + (normalised - arrays["mean5"]).reshape(-1) @ arrays["weights"]).reshape(68, 2)
    return transform_points(cv2.invertAffineTransform(to_mean), estimate)


class FivePointLandmarkPredictor:
    """dlib's 5-point shape predictor (``shape_predictor_5_face_landmarks.dat``, public domain: dlib's own 5-point
    dataset) and the fitted map to the 68-point layout (:func:`five_to_sixty_eight`), so that the alignment, the
    donor warp and the paste region work unchanged without the 68-point model.

    Args:
        raw: return the 5 points (float64 (5, 2)) instead of the 68-point estimate (for fitting the map).
    """

    name = "dlib5"

    def __init__(self, raw: bool = False) -> None:
        self._predictor = dlib.shape_predictor(str(dlib_model_path(LANDMARKS_5)))
        self.raw = raw

    def __call__(self, image: np.ndarray, box: Sequence[float]) -> np.ndarray:
        """float64 (68, 2) x, y pixels estimated for the face in ``box`` (or (5, 2) with ``raw``).

        Raises:
            ValueError: for an invalid box or degenerate points.
        """
        shape = self._predictor(as_rgb_uint8(image), _dlib_rectangle(box))
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
        return points if self.raw else five_to_sixty_eight(points)


LANDMARK_MODELS = ("dlib68", "dlib5")
"""The landmark paths: ``dlib68`` (non-commercial terms) and ``dlib5`` (public domain; for commercial use)."""


def landmark_predictor(name: str = "dlib68") -> "LandmarkPredictor | FivePointLandmarkPredictor":
    """The landmark predictor called ``name`` (:data:`LANDMARK_MODELS`); both return float64 (68, 2) points.

    Raises:
        ValueError: for another name.
    """
    if name == "dlib68":
        return LandmarkPredictor()
    if name == "dlib5":
        return FivePointLandmarkPredictor()
    raise ValueError(f"landmarks must be one of {', '.join(LANDMARK_MODELS)}, got {name!r}")


def alignment_affine(landmarks: np.ndarray, frame: int = ALIGN_FRAME, crop: int = ALIGN_CROP) -> np.ndarray:
    """The paper's alignment as one 2x3 affine from image pixels to crop pixels.

    Args:
        landmarks: float (68, 2) dlib landmarks in image pixels.
        frame: side of the aligned frame on which the eye/mouth lines are placed (128 in the paper).
        crop: side of the centre crop (112 in the paper); ``crop == frame`` gives the full frame.

    Returns:
        float64 (2, 3) matrix ``A`` with ``crop_xy = A @ [x, y, 1]``.

    Raises:
        ValueError: for a wrong landmark shape, non-finite values or degenerate geometry (eyes on the mouth).
    """
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (68, 2) or not np.all(np.isfinite(points)):
        raise ValueError(f"expected 68 finite (x, y) landmarks, got shape {points.shape}")
    if crop > frame:
        raise ValueError(f"crop ({crop}) must not exceed frame ({frame})")
    left_eye, right_eye = points[LEFT_EYE].mean(axis=0), points[RIGHT_EYE].mean(axis=0)
    angle = np.arctan2(right_eye[1] - left_eye[1], right_eye[0] - left_eye[0])
    cos, sin = np.cos(-angle), np.sin(-angle)
    rotation = np.array([[cos, -sin], [sin, cos]])
    upright = points @ rotation.T
    eye_y = upright[EYES, 1].mean()
    mouth_y = upright[MOUTH, 1].mean()
    if mouth_y - eye_y <= 1e-6:
        raise ValueError("degenerate landmarks: the mouth line is not below the eye line")
    target_eye_y = EYE_LINE_FROM_TOP * frame
    target_mouth_y = (1.0 - MOUTH_LINE_FROM_BOTTOM) * frame
    scale = (target_mouth_y - target_eye_y) / (mouth_y - eye_y)
    centre_x = 0.5 * (upright[:, 0].min() + upright[:, 0].max())
    offset = (frame - crop) / 2.0
    # OpenCV samples at integer pixel centres, so the frame's centre line is x = (frame - 1) / 2.
    translation = np.array(
        [(frame - 1) / 2.0 - scale * centre_x - offset, target_eye_y - scale * eye_y - offset]
    )
    affine = np.zeros((2, 3))
    affine[:, :2] = scale * rotation
    affine[:, 2] = translation
    return affine


def warp_face(image: np.ndarray, affine: np.ndarray, size: int = ALIGN_CROP) -> np.ndarray:
    """Warp ``image`` (uint8 RGB, H x W x 3) with a 2x3 affine to a (size, size, 3) uint8 crop.

    Pixels that fall outside the source are filled by replicating its border, so a face at the frame's edge
    does not gain a black band the networks never saw in training.
    """
    return cv2.warpAffine(
        as_rgb_uint8(image), np.asarray(affine, dtype=np.float64), (size, size),
        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE,
    )


@dataclass
class AlignedFace:
    """One detected and aligned face.

    Attributes:
        crop: uint8 (112, 112, 3) RGB aligned crop.
        affine: float64 (2, 3) image-to-crop affine; ``cv2.invertAffineTransform(affine)`` maps the crop back.
        landmarks: float64 (68, 2) landmarks in source-image pixels.
        detection: the box and score the face was found with.
    """

    crop: np.ndarray
    affine: np.ndarray
    landmarks: np.ndarray
    detection: Detection = field(default_factory=lambda: Detection((0.0, 0.0, 0.0, 0.0), 0.0))


class FaceAligner:
    """Detect, predict landmarks and align every face of an image.

    Args:
        detector: a :class:`FaceDetector` (default: HOG, no upsampling, score >= 0).
        crop: side of the aligned crop (112).
        landmarks: the landmark model (:data:`LANDMARK_MODELS`).
    """

    def __init__(self, detector: FaceDetector | None = None, crop: int = ALIGN_CROP, landmarks: str = "dlib68") -> None:
        self.detector = detector or FaceDetector()
        self.landmarks = landmark_predictor(landmarks)
        self.crop = crop

    def align_box(self, image: np.ndarray, detection: Detection) -> AlignedFace:
        """Align the face inside a known box (e.g. given by a caller's own detector)."""
        rgb = as_rgb_uint8(image)
        points = self.landmarks(rgb, detection.box)
        affine = alignment_affine(points, crop=self.crop)
        return AlignedFace(warp_face(rgb, affine, self.crop), affine, points, detection)

    def __call__(self, image: np.ndarray) -> list[AlignedFace]:
        """Every face in a uint8 RGB image, best detection score first; [] when there is none."""
        rgb = as_rgb_uint8(image)
        return [self.align_box(rgb, detection) for detection in self.detector(rgb)]


def load_rgb(path: str) -> np.ndarray:
    """Read an image file as uint8 RGB (H, W, 3).

    Raises:
        ValueError: if the file cannot be read or decoded as an image.
    """
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read {path} as an image (missing, unreadable, or not an image format OpenCV knows)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def save_rgb(path: str, image: np.ndarray) -> None:
    """Write a uint8 RGB image; the format follows the file extension."""
    if not cv2.imwrite(str(path), cv2.cvtColor(as_rgb_uint8(image), cv2.COLOR_RGB2BGR)):
        raise ValueError(f"cannot write an image to {path} (unknown extension or unwritable folder)")
