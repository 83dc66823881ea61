# SPDX-License-Identifier: Apache-2.0
"""Paste-back: put a generated 112x112 face into the full frame with the inverse of its alignment affine, blended
through a feathered mask so no square seam shows. Pixels outside the mask are returned unchanged, bit for bit.

Also the fail-closed fallbacks (blur, pixelate) applied through the same mask, so that a face that could not be
camouflaged is hidden over exactly the region a camouflaged one would have replaced.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from facecamo.align import ALIGN_CROP, as_rgb_uint8
from facecamo.geometry import transform_points


@functools.lru_cache(maxsize=8)
def face_mask(size: int = ALIGN_CROP, feather: float = 0.12) -> np.ndarray:
    """float32 (size, size) blending mask in crop coordinates: 1 over the face, falling smoothly to exactly 0 well
    inside the crop's border (so the warped mask never reaches the warped square's edge).

    The face region is an ellipse covering forehead to chin and cheek to cheek of the aligned crop.
    """
    mask = np.zeros((size, size), np.float32)
    centre = (size / 2 - 0.5, size * 0.52)
    axes = (size * 0.40, size * 0.47)
    cv2.ellipse(mask, (int(round(centre[0] * 16)), int(round(centre[1] * 16))),
                (int(round(axes[0] * 16 * (1 - feather))), int(round(axes[1] * 16 * (1 - feather)))),
                0, 0, 360, 1.0, thickness=-1, lineType=cv2.LINE_AA, shift=4)
    sigma = max(size * feather / 2.5, 0.5)
    mask = cv2.GaussianBlur(mask, (0, 0), sigma)
    mask[mask < 1e-3] = 0.0
    border = max(2, int(size * 0.02))
    mask[:border], mask[-border:], mask[:, :border], mask[:, -border:] = 0, 0, 0, 0
    return mask / mask.max()


def _face_region(affine: np.ndarray, size: int, shape: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """Inverse affine and the frame's (x0, y0, x1, y1) box that the crop covers, clipped; None if outside."""
    inverse = cv2.invertAffineTransform(np.asarray(affine, dtype=np.float64))
    corners = np.array([[0, 0], [size - 1, 0], [0, size - 1], [size - 1, size - 1]], np.float64)
    mapped = transform_points(inverse, corners)
    height, width = shape
    x0, y0 = max(int(np.floor(mapped[:, 0].min())) - 1, 0), max(int(np.floor(mapped[:, 1].min())) - 1, 0)
    x1, y1 = min(int(np.ceil(mapped[:, 0].max())) + 2, width), min(int(np.ceil(mapped[:, 1].max())) + 2, height)
    if x0 >= x1 or y0 >= y1:
        return None
    return inverse, (x0, y0, x1, y1)


def paste_face(frame: np.ndarray, face: np.ndarray, affine: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Blend an aligned face back into a copy of the frame.

    Args:
        frame: uint8 (H, W, 3) RGB.
        face: uint8 (S, S, 3) RGB aligned crop (S = 112), e.g. a generated face.
        affine: float (2, 3) frame-to-crop affine the crop was aligned with.
        mask: optional float32 (S, S) mask in crop space (default :func:`face_mask`).
    Returns: uint8 (H, W, 3), equal to ``frame`` wherever the warped mask is 0.
    """
    out = as_rgb_uint8(frame).copy()
    paste_face_inplace(out, face, affine, mask)
    return out


def paste_face_inplace(frame: np.ndarray, face: np.ndarray, affine: np.ndarray, mask: np.ndarray | None = None) -> int:
    """As :func:`paste_face`, writing into ``frame`` (uint8 (H, W, 3), C-contiguous) to paste many faces cheaply.
    Returns the number of pixels written (0 when the face's region lies outside the frame)."""
    face = as_rgb_uint8(face)
    size = face.shape[0]
    if face.shape[:2] != (size, size):
        raise ValueError(f"expected a square aligned face, got shape {face.shape}")
    mask = face_mask(size) if mask is None else mask
    region = _face_region(affine, size, frame.shape[:2])
    if region is None:
        return 0
    inverse, (x0, y0, x1, y1) = region
    # Warp only the face's bounding box: the inverse affine shifted by the box's origin.
    shifted = inverse.copy()
    shifted[:, 2] -= (x0, y0)
    box = (x1 - x0, y1 - y0)
    warped_face = cv2.warpAffine(face, shifted, box, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    warped_mask = cv2.warpAffine(mask, shifted, box, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    alpha = warped_mask[:, :, None]
    patch = frame[y0:y1, x0:x1]
    blended = patch.astype(np.float32) * (1 - alpha) + warped_face.astype(np.float32) * alpha
    inside = warped_mask > 0
    patch[inside] = np.clip(np.rint(blended[inside]), 0, 255).astype(np.uint8)
    return int(inside.sum())


def blur_face(crop: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of an aligned crop (uint8 (S, S, 3)) with standard deviation ``sigma`` crop pixels."""
    return cv2.GaussianBlur(as_rgb_uint8(crop), (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)


def pixelate_face(crop: np.ndarray, block: int) -> np.ndarray:
    """Pixelation of an aligned crop (uint8 (S, S, 3)) into ``block`` x ``block``-pixel squares."""
    crop = as_rgb_uint8(crop)
    size = crop.shape[0]
    cells = max(1, size // block)
    small = cv2.resize(crop, (cells, cells), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_NEAREST)


FALLBACK_BLUR_SIGMA = 12.0
"""Blur strength of the fail-closed fallback, in aligned-crop pixels: no identity survives it (see the evaluation)."""


def conceal_face(frame: np.ndarray, crop: np.ndarray, affine: np.ndarray) -> None:
    """Fail closed: hide a face that could not be camouflaged under a heavy blur, in place, over the same region."""
    paste_face_inplace(frame, blur_face(crop, FALLBACK_BLUR_SIGMA), affine)


CONCEAL_BOX_MAX_SIGMA = 16.0
"""conceal_box blurs at full resolution up to this sigma (boxes up to about 256 px wide), on a shrunk copy beyond."""


def conceal_box(frame: np.ndarray, box: tuple[float, float, float, float], margin: float = 0.2) -> None:
    """Fail closed without landmarks: pixelate and blur the detection box (grown by ``margin`` of its size on each
    side), in place. Used when a face was detected but could not be aligned."""
    height, width = frame.shape[:2]
    left, top, right, bottom = box
    grow_x, grow_y = (right - left) * margin, (bottom - top) * margin
    x0, y0 = max(int(np.floor(left - grow_x)), 0), max(int(np.floor(top - grow_y)), 0)
    x1, y1 = min(int(np.ceil(right + grow_x)), width), min(int(np.ceil(bottom + grow_y)), height)
    if x0 >= x1 or y0 >= y1:
        return
    patch = frame[y0:y1, x0:x1]
    sigma = max(1.0, (x1 - x0) / 16)
    if sigma > CONCEAL_BOX_MAX_SIGMA:
        # A Gaussian blur costs O(sigma) per pixel (a full 3840x2160 box took 28 s at sigma 240): blur a copy shrunk
        # so that sigma is CONCEAL_BOX_MAX_SIGMA there, then enlarge it. At this scale the 16-pixel cells of the
        # pixelation are far below the blur's width, so the shrinking stands in for them.
        scale = CONCEAL_BOX_MAX_SIGMA / sigma
        small = cv2.resize(patch, (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))), interpolation=cv2.INTER_AREA)
        blurred = cv2.GaussianBlur(small, (0, 0), CONCEAL_BOX_MAX_SIGMA)
        frame[y0:y1, x0:x1] = cv2.resize(blurred, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        return
    cells_x, cells_y = max(1, (x1 - x0) // 16), max(1, (y1 - y0) // 16)
    small = cv2.resize(patch, (cells_x, cells_y), interpolation=cv2.INTER_AREA)
    coarse = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
    frame[y0:y1, x0:x1] = cv2.GaussianBlur(coarse, (0, 0), sigma)
