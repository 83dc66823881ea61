# SPDX-License-Identifier: Apache-2.0
"""Does a camouflaged face sit naturally in its scene? Per-face colour figures, numpy and OpenCV only.

A replaced face must keep its scene's light and colour: v3's faces came out lighter than the people they replaced
(+24 L* in a dim clip: they glowed) and carried green and purple blotches (issue 17). Measured on the inner face
(brows, eyes, nose, mouth: the convex hull of dlib landmarks 17-67) of two crops aligned alike (the original's
alignment), so hair and background, which no method changes, do not dilute the figures:

- ``delta_e``: CIEDE2000 between the inner face's mean colours before and after (:func:`ciede2000`); a just
  noticeable difference is about 1 to 2, 3 is visible side by side.
- ``lightness``: the change of the inner face's mean CIE L* (after minus before; positive: lighter).
- ``chroma_ratio``: the inner face's chroma spread after over before, the spread being the root of the summed
  variances of a* and b* over the inner face after a light blur (sigma 1 px, so sensor noise does not count): colour
  blotches raise it, a face that is merely another person's skin does not.

CIEDE2000 is written out here (Sharma, Wu and Dalal 2005; checked against their published test pairs in the tests)
rather than taken from scikit-image, which would bring SciPy into the environment for one formula on a few numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

INNER_FACE = slice(17, 68)  # dlib's brows, nose, eyes and mouth


def inner_face_mask(landmarks: np.ndarray, size: int = 112) -> np.ndarray:
    """bool (size, size): the convex hull of float (68, 2) ``landmarks`` 17-67 (crop pixels)."""
    hull = cv2.convexHull(np.round(np.asarray(landmarks, np.float64)[INNER_FACE] * 16).astype(np.int32))
    mask = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(mask, hull, 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def to_lab(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) sRGB -> float32 (H, W, 3) CIE L*a*b* (D65): L* in 0..100, a* and b* unscaled."""
    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference (kL = kC = kH = 1) of float (..., 3) L*a*b* arrays -> float (...)."""
    l1, a1, b1 = np.moveaxis(np.asarray(lab1, np.float64), -1, 0)
    l2, a2, b2 = np.moveaxis(np.asarray(lab2, np.float64), -1, 0)
    c_mean = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_mean ** 7 / (c_mean ** 7 + 25.0 ** 7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    dl, dc = l2 - l1, c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(c1p * c2p == 0, 0.0, dh)
    dh_big = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh) / 2)
    l_mean, cp_mean = (l1 + l2) / 2, (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_mean = np.where(np.abs(h1p - h2p) > 180, np.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2), h_sum / 2)
    h_mean = np.where(c1p * c2p == 0, h_sum, h_mean)
    t = (1 - 0.17 * np.cos(np.radians(h_mean - 30)) + 0.24 * np.cos(np.radians(2 * h_mean))
         + 0.32 * np.cos(np.radians(3 * h_mean + 6)) - 0.20 * np.cos(np.radians(4 * h_mean - 63)))
    s_l = 1 + 0.015 * (l_mean - 50) ** 2 / np.sqrt(20 + (l_mean - 50) ** 2)
    s_c = 1 + 0.045 * cp_mean
    s_h = 1 + 0.015 * cp_mean * t
    r_c = 2 * np.sqrt(cp_mean ** 7 / (cp_mean ** 7 + 25.0 ** 7))
    r_t = -np.sin(np.radians(60 * np.exp(-(((h_mean - 275) / 25) ** 2)))) * r_c
    return np.sqrt((dl / s_l) ** 2 + (dc / s_c) ** 2 + (dh_big / s_h) ** 2 + r_t * (dc / s_c) * (dh_big / s_h))


@dataclass(frozen=True)
class Realism:
    """One face's colour figures (see the module's docstring)."""

    delta_e: float
    lightness: float
    chroma_ratio: float


def _chroma_spread(lab: np.ndarray, mask: np.ndarray) -> float:
    smooth = cv2.GaussianBlur(lab[..., 1:], (0, 0), 1.0)
    return float(np.sqrt(smooth[mask].var(axis=0).sum()))


def realism(original: np.ndarray, processed: np.ndarray, landmarks: np.ndarray) -> Realism:
    """The colour figures of ``processed`` against ``original``: uint8 (112, 112, 3) RGB crops aligned alike, and the
    original's float (68, 2) landmarks in their pixels."""
    mask = inner_face_mask(landmarks, original.shape[0])
    if mask.sum() < 16:
        raise ValueError("the inner face covers fewer than 16 pixels: landmarks outside the crop?")
    before, after = to_lab(original), to_lab(processed)
    mean_before, mean_after = before[mask].mean(axis=0), after[mask].mean(axis=0)
    spread_before = max(_chroma_spread(before, mask), 0.5)  # a grey (colourless) face: no ratio above noise
    return Realism(delta_e=float(ciede2000(mean_before, mean_after)), lightness=float(mean_after[0] - mean_before[0]),
                   chroma_ratio=_chroma_spread(after, mask) / spread_before)


def summarise(values: list[Realism]) -> dict[str, float]:
    """Median and 90th percentile of each figure over faces (|lightness| for its percentiles, its signed median too)."""
    if not values:
        return {}
    delta_e = np.array([v.delta_e for v in values])
    lightness = np.array([v.lightness for v in values])
    chroma = np.array([v.chroma_ratio for v in values])
    return {"delta_e_median": float(np.median(delta_e)), "delta_e_p90": float(np.percentile(delta_e, 90)),
            "lightness_median": float(np.median(lightness)), "abs_lightness_p90": float(np.percentile(np.abs(lightness), 90)),
            "chroma_ratio_median": float(np.median(chroma)), "chroma_ratio_p90": float(np.percentile(chroma, 90)),
            "faces": len(values)}


@dataclass(frozen=True)
class RealismTarget:
    key: str
    bound: float
    name: str


# issue 17: dE median <= 3, p90 <= 7; |lightness change| p90 <= 6 L*; chroma spread at most 1.6x the original's at p90
REALISM_TARGETS = (
    RealismTarget("delta_e_median", 3.0, "dE median"),
    RealismTarget("delta_e_p90", 7.0, "dE p90"),
    RealismTarget("abs_lightness_p90", 6.0, "|dL*| p90"),
    RealismTarget("chroma_ratio_p90", 1.6, "chroma spread ratio p90"),
)


def realism_met(summary: dict[str, float]) -> dict[str, bool]:
    """Each :data:`REALISM_TARGETS` figure of a :func:`summarise` dict against its bound (at most)."""
    return {t.key: bool(summary.get(t.key, float("inf")) <= t.bound) for t in REALISM_TARGETS}


DARK_GAMMA, DARK_BRIGHTNESS = 2.2, 0.4
"""The dim scene every realism and leak measurement makes from a lit one (issue 17: gamma 2.2 at 40% brightness)."""


def darken(frame: np.ndarray, gamma: float = DARK_GAMMA, brightness: float = DARK_BRIGHTNESS) -> np.ndarray:
    """uint8 (H, W, 3): a dim scene made from a frame: ``255 * brightness * (x / 255) ** gamma``."""
    return np.clip(np.rint(255.0 * brightness * (frame / 255.0) ** gamma), 0, 255).astype(np.uint8)

