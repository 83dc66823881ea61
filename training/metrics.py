# SPDX-License-Identifier: Apache-2.0
"""Evaluation metrics and the face-recognition judges that decide whether two faces are the same person."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import dlib
import numpy as np

from facecamo.dlib_models import FACE_RECOGNITION, dlib_model_path


_SSIM_C1, _SSIM_C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2  # grey levels 0..255


def _mean_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Mean SSIM index of two float64 arrays (H, W) or (H, W, C) of grey levels 0..255: 11x11 Gaussian window,
    sigma 1.5, reflected borders, channels averaged."""

    def blur(z: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(z, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mu_x, mu_y = blur(x), blur(y)
    var_x, var_y = blur(x * x) - mu_x**2, blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    index = ((2 * mu_x * mu_y + _SSIM_C1) * (2 * cov + _SSIM_C2)) / ((mu_x**2 + mu_y**2 + _SSIM_C1) * (var_x + var_y + _SSIM_C2))
    return float(index.mean())


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1=0.01, K2=0.03) of two uint8
    images of the same shape, computed per channel and averaged. 1.0 for identical images."""
    if a.shape != b.shape:
        raise ValueError(f"SSIM needs images of one shape, got {a.shape} and {b.shape}")
    return _mean_ssim(a.astype(np.float64), b.astype(np.float64))


COARSE_SIZE = 28  # SSIM-28: the scale of face shape, feature layout and hairline, at which people still recognise faces


def coarse_grey(image: np.ndarray, size: int = COARSE_SIZE) -> np.ndarray:
    """uint8 (H, W, 3) RGB -> float64 (size, size) luma (ITU-R BT.601 weights, grey levels 0..255), area-averaged:
    a 112x112 crop becomes the means of its 4x4 blocks, with no rounding to integers on the way."""
    grey = image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA)


def ssim_coarse(a: np.ndarray, b: np.ndarray, size: int = COARSE_SIZE) -> float:
    """SSIM-28: the SSIM of two uint8 (H, W, 3) RGB images after both are turned grey and area-downsampled to
    ``size`` x ``size`` (:func:`coarse_grey`), with the same 11x11 Gaussian window (sigma 1.5) as :func:`ssim`.

    Fine texture, noise and colour do not reach it: what remains is the coarse structure. A change that lowers
    :func:`ssim` but not this one adds detail without making the face look like someone else."""
    if a.shape != b.shape:
        raise ValueError(f"SSIM-28 needs images of one shape, got {a.shape} and {b.shape}")
    return _mean_ssim(coarse_grey(a, size), coarse_grey(b, size))


def mean_abs_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two uint8 images, in grey levels (0..255)."""
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


@dataclass
class Verification:
    accuracy: float
    tar: float  # genuine pairs accepted
    far: float  # impostor pairs accepted
    genuine: int
    impostor: int


def verification(genuine_accepted: np.ndarray, impostor_accepted: np.ndarray) -> Verification:
    """Accuracy, TAR and FAR from boolean accept decisions on genuine and impostor pairs."""
    genuine_accepted, impostor_accepted = np.asarray(genuine_accepted, bool), np.asarray(impostor_accepted, bool)
    correct = genuine_accepted.sum() + (~impostor_accepted).sum()
    total = len(genuine_accepted) + len(impostor_accepted)
    return Verification(
        accuracy=float(correct / total) if total else float("nan"),
        tar=float(genuine_accepted.mean()) if len(genuine_accepted) else float("nan"),
        far=float(impostor_accepted.mean()) if len(impostor_accepted) else float("nan"),
        genuine=len(genuine_accepted), impostor=len(impostor_accepted),
    )


def rank1(probe_embeddings: np.ndarray, probe_labels: np.ndarray, gallery_embeddings: np.ndarray,
          gallery_labels: np.ndarray, judge: "Judge") -> float:
    """Fraction of probes whose closest gallery face (by the judge's score) has the probe's label."""
    if len(probe_embeddings) == 0:
        return float("nan")
    scores = judge.score_matrix(probe_embeddings, gallery_embeddings)
    best = scores.argmin(axis=1) if judge.lower_is_same else scores.argmax(axis=1)
    return float((gallery_labels[best] == probe_labels).mean())


# ArcFace's 5-point template on a 112x112 crop: eye centres, nose tip, mouth corners.
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], np.float32)


class Judge:
    """A face-recognition network that is not part of the model. ``embed`` takes a uint8 RGB image and the face's
    68 landmarks; ``accepts`` compares two embeddings at the judge's threshold."""

    name: str
    threshold: float
    lower_is_same: bool  # distance (True) or similarity (False)

    def embed(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def pair_scores(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Scores of row-wise pairs: float (N, D) x (N, D) -> (N,)."""
        raise NotImplementedError

    def score_matrix(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def accepts(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores)
        return scores < self.threshold if self.lower_is_same else scores > self.threshold


class DlibJudge(Judge):
    """dlib's ResNet face recogniser (99.38% on LFW): Euclidean distance of 128-d descriptors, same person below 0.6."""

    name = "dlib"
    lower_is_same = True

    def __init__(self, threshold: float = 0.6) -> None:
        self.threshold = threshold
        self._net = dlib.face_recognition_model_v1(str(dlib_model_path(FACE_RECOGNITION)))

    def embed(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        points = [dlib.point(int(round(x)), int(round(y))) for x, y in landmarks]
        xs, ys = landmarks[:, 0], landmarks[:, 1]
        rect = dlib.rectangle(int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))
        shape = dlib.full_object_detection(rect, points)
        return np.array(self._net.compute_face_descriptor(np.ascontiguousarray(image), shape), np.float32)

    def pair_scores(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.linalg.norm(a - b, axis=1)

    def score_matrix(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)


class OnnxJudge(Judge):
    """Any ONNX face embedder on ArcFace-aligned 112x112 crops ((x - 127.5) / 128, RGB, NCHW); cosine similarity,
    same person above ``threshold``."""

    lower_is_same = False

    def __init__(self, path: str | Path, threshold: float) -> None:
        import onnxruntime

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX judge {path} not found")
        self.name = path.stem
        self.threshold = threshold
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def embed(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        five = np.array([landmarks[36:42].mean(0), landmarks[42:48].mean(0), landmarks[30], landmarks[48], landmarks[54]], np.float32)
        matrix, _ = cv2.estimateAffinePartial2D(five, ARCFACE_TEMPLATE, method=cv2.LMEDS)
        crop = cv2.warpAffine(image, matrix, (112, 112), borderMode=cv2.BORDER_REPLICATE)
        x = ((crop.astype(np.float32) - 127.5) / 128.0).transpose(2, 0, 1)[None]
        embedding = self._session.run(None, {self._input: x})[0][0]
        return (embedding / np.linalg.norm(embedding)).astype(np.float32)

    def pair_scores(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a * b).sum(axis=1)

    def score_matrix(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a @ b.T
