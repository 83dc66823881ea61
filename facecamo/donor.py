# SPDX-License-Identifier: Apache-2.0
"""Donor faces: another face warped onto a source face's 68 landmarks, the target that the donor-guided generator
(the ``donor`` preset, issue 11) turns into a face with the source's identity and the donor's look.

Everything here is numpy and OpenCV, shared by training (which builds its targets with these functions) and by the
torch-free frame pipeline (which builds the generator's input with them), so serving sees exactly what training saw.

Geometry, all in the 112x112 aligned crop's pixels (:mod:`facecamo.align`):

- :func:`control_points`: dlib's 68 landmarks, ten forehead points (the eyebrows lifted by
  :data:`FOREHEAD_LIFT` eye-to-mouth distances, so the warped and replaced region reaches the hairline) and eight
  points on the crop's border (so the triangulation covers the whole crop);
- :func:`warp_map`: a piecewise-affine map over one fixed triangulation of those points (made on :data:`MEAN_SHAPE`)
  that says, for every pixel of a face with landmarks A, where to sample an image whose face has landmarks B;
- :func:`region_mask`: the replaced region, forehead to chin and out to the face outline, feathered at its border.

Donors are never a real person's face: a donor bank entry is the pixel average of several portraits warped to
:data:`MEAN_SHAPE` (:func:`blend_donors`, k-same style), and training blends its donors the same way.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import cv2
import numpy as np

from facecamo.geometry import similarity_affine, transform_points
from facecamo.spec import (
    FACE_SIZE as ALIGN_CROP,  # (not facecamo.align: training boxes may have no dlib)
)

JAW = slice(0, 17)
BROWS = slice(17, 27)
EYES = slice(36, 48)
MOUTH = slice(48, 68)
FOREHEAD_LIFT = 0.6
"""Forehead points sit this many eye-to-mouth distances above the eyebrows (about the hairline of an adult face)."""
SHAPE_BLEND = 0.5
"""How far the target's geometry moves from the source's landmarks towards the mean face's (fitted to the source by a
similarity, so pose and size stay): face shape and the layout of features are what people recognise first, so the
target keeps the source's pose and expression but not all of its proportions. 0 keeps the source's geometry."""
REGION_FEATHER = 3.0
"""Gaussian sigma (crop pixels) of the replaced region's soft border."""

# dlib's 68 landmarks averaged over LFW's training crops (``make prepare``'s landmarks.npy), x then y, crop pixels.
MEAN_SHAPE = np.array([
    [15.3, 51.2], [15.7, 61.7], [16.7, 72.1], [18.5, 82.5], [22.2, 92.2], [28.2, 100.8], [35.9, 108.0], [44.9, 113.7],
    [55.2, 115.4], [65.5, 113.8], [74.6, 108.3], [82.5, 101.2], [88.6, 92.6], [92.5, 82.9], [94.4, 72.4], [95.3, 61.8],
    [95.7, 51.1], [23.8, 43.2], [28.4, 38.6], [35.1, 37.0], [42.1, 37.8], [48.7, 40.4], [61.5, 40.4], [68.1, 37.8],
    [75.2, 37.0], [82.0, 38.6], [86.7, 43.2], [55.1, 48.2], [55.1, 54.7], [55.1, 61.2], [55.0, 68.0], [47.3, 72.9],
    [51.0, 74.4], [55.1, 75.6], [59.3, 74.4], [63.1, 72.9], [31.8, 49.8], [35.8, 47.5], [40.6, 47.5], [45.0, 50.3],
    [40.4, 51.2], [35.7, 51.2], [65.5, 50.3], [69.7, 47.5], [74.5, 47.5], [78.6, 49.8], [74.7, 51.2], [70.0, 51.2],
    [39.9, 86.8], [45.3, 83.8], [50.9, 82.6], [55.2, 83.5], [59.4, 82.6], [65.1, 83.9], [70.7, 86.9], [65.3, 92.3],
    [59.7, 94.6], [55.2, 95.0], [50.6, 94.6], [45.1, 92.2], [42.2, 87.0], [50.9, 85.7], [55.2, 86.2], [59.4, 85.8],
    [68.3, 87.0], [59.5, 89.7], [55.2, 90.2], [50.8, 89.6],
], np.float64)


def control_points(landmarks: np.ndarray, size: int = ALIGN_CROP) -> np.ndarray:
    """float64 (86, 2): the 68 landmarks, 10 forehead points, 8 crop-border points (corners and edge midpoints).

    Args:
        landmarks: float (68, 2) dlib landmarks in crop pixels.
    Raises:
        ValueError: for a wrong shape, non-finite values or a face whose eyes and mouth coincide.
    """
    points = np.asarray(landmarks, np.float64)
    if points.shape != (68, 2) or not np.all(np.isfinite(points)):
        raise ValueError(f"expected 68 finite (x, y) landmarks, got shape {points.shape}")
    eyes, mouth = points[EYES].mean(axis=0), points[MOUTH].mean(axis=0)
    up = eyes - mouth
    distance = float(np.hypot(*up))
    if distance < 1e-3:
        raise ValueError("degenerate landmarks: the eyes and the mouth coincide")
    forehead = points[BROWS] + FOREHEAD_LIFT * up
    last = size - 1.0
    half = last / 2.0
    border = np.array([[0, 0], [half, 0], [last, 0], [last, half], [last, last], [half, last], [0, last], [0, half]],
                      np.float64)
    return np.concatenate([points, forehead, border])


@functools.lru_cache(maxsize=2)
def triangles(size: int = ALIGN_CROP) -> np.ndarray:
    """int32 (T, 3): a Delaunay triangulation of :func:`control_points` of :data:`MEAN_SHAPE`, fixed, so that every
    face is cut into the same triangles (vertex indices into its control points)."""
    points = control_points(MEAN_SHAPE, size)
    subdiv = cv2.Subdiv2D((-size, -size, 3 * size, 3 * size))  # landmarks may lie outside the crop (the chin)
    for x, y in points:
        subdiv.insert((float(x), float(y)))
    index = {(round(float(x), 3), round(float(y), 3)): n for n, (x, y) in enumerate(points)}
    result = []
    for tri in subdiv.getTriangleList().reshape(-1, 3, 2):
        keys = [(round(float(x), 3), round(float(y), 3)) for x, y in tri]
        if all(k in index for k in keys):  # Subdiv2D's outer virtual vertices are not ours
            result.append([index[k] for k in keys])
    return np.array(result, np.int32)


def warp_map(to_landmarks: np.ndarray, from_landmarks: np.ndarray = MEAN_SHAPE, size: int = ALIGN_CROP) -> np.ndarray:
    """The piecewise-affine sampling map that moves a face with ``from_landmarks`` onto ``to_landmarks``.

    Args:
        to_landmarks: float (68, 2), the face whose geometry the result has (the source), crop pixels.
        from_landmarks: float (68, 2), the face being moved (the donor; default the mean shape).
    Returns:
        float32 (size, size, 2): for each output pixel (row y, column x) the (x, y) to sample in the moved image
        (``cv2.remap(image, map[..., 0], map[..., 1], ...)``).
    Raises:
        ValueError: for invalid landmarks (see :func:`control_points`).
    """
    tris = triangles(size)
    destination = control_points(to_landmarks, size)[tris]  # (T, 3, 2)
    origin = control_points(from_landmarks, size)[tris]
    # Each triangle's affine from destination to origin pixels: [x, y, 1] @ M = origin (M: 3x2). pinv copes with a
    # triangle that a turned face has flattened to a line (it covers no pixel then anyway).
    homogeneous = np.concatenate([destination, np.ones((len(tris), 3, 1))], axis=2)  # (T, 3, 3)
    affines = np.linalg.pinv(homogeneous) @ origin  # (T, 3, 2)
    owner = np.full((size, size), -1, np.int32)
    for number, corners in enumerate(destination):
        cv2.fillConvexPoly(owner, np.round(corners * 16).astype(np.int32), number, lineType=cv2.LINE_8, shift=4)
    uncovered = owner < 0
    if uncovered.any():  # pixels outside every triangle (the border points bound the crop) keep a similarity map
        owner[uncovered] = 0
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    pixels = np.stack([xs, ys, np.ones_like(xs)], axis=-1)  # (S, S, 3)
    mapping = np.einsum("hwk,hwkj->hwj", pixels, affines[owner])
    if uncovered.any():
        mapping[uncovered] = pixels[uncovered][:, :2]
    return mapping.astype(np.float32)


def warp_image(image: np.ndarray, mapping: np.ndarray) -> np.ndarray:
    """uint8 (S, S, 3) image sampled through a :func:`warp_map` (bilinear, border replicated) -> uint8 (S, S, 3)."""
    return cv2.remap(image, mapping[..., 0], mapping[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def region_mask(landmarks: np.ndarray, size: int = ALIGN_CROP, feather: float = REGION_FEATHER) -> np.ndarray:
    """float32 (size, size) in [0, 1]: the replaced region of a face, the convex hull of its jaw line and forehead
    points, shrunk by two feather widths and blurred, so it is 1 well inside the face outline and exactly 0 outside
    it and on the crop's outermost pixels (the pasted square never shows an edge)."""
    points = control_points(landmarks, size)
    outline = np.concatenate([points[JAW], points[68:78]])
    hull = cv2.convexHull(np.round(outline * 16).astype(np.int32))
    mask = np.zeros((size, size), np.float32)
    cv2.fillConvexPoly(mask, hull, 1.0, lineType=cv2.LINE_AA, shift=4)
    shrink = round(2 * feather)
    if shrink > 0:
        mask = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * shrink + 1, 2 * shrink + 1)))
    mask = cv2.GaussianBlur(mask, (0, 0), feather)
    mask[mask < 1e-3] = 0.0
    mask[:2], mask[-2:], mask[:, :2], mask[:, -2:] = 0.0, 0.0, 0.0, 0.0
    return mask


def match_colour(image: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``image`` with each channel's mean and spread inside ``mask`` moved to ``reference``'s (so the donor's skin
    takes the source's lighting and tone: the frame around it stays consistent).

    Args: uint8 (S, S, 3) image and reference, float32 (S, S) mask. Returns uint8 (S, S, 3).
    """
    weight = mask[..., None].astype(np.float64)
    total = max(float(weight.sum()), 1.0)
    source = image.astype(np.float64)
    target = reference.astype(np.float64)
    mean_s = (source * weight).sum(axis=(0, 1)) / total
    mean_t = (target * weight).sum(axis=(0, 1)) / total
    std_s = np.sqrt(((source - mean_s) ** 2 * weight).sum(axis=(0, 1)) / total) + 1.0
    std_t = np.sqrt(((target - mean_t) ** 2 * weight).sum(axis=(0, 1)) / total) + 1.0
    # The spread moves at most by a factor 2 either way: a flat (e.g. blurred) source must not flatten the donor.
    gain = np.clip(std_t / std_s, 0.5, 2.0)
    return np.clip(np.rint((source - mean_s) * gain + mean_t), 0, 255).astype(np.uint8)


SHARPNESS_SIGMAS = (0.6, 0.9, 1.3, 1.8, 2.5, 3.5)
"""Gaussian sigmas (crop pixels) tried, in order, to soften a donor that is sharper than the face it replaces."""


def sharpness(image: np.ndarray, mask: np.ndarray) -> float:
    """Mean squared Laplacian of the grey image inside ``mask`` (weights): how much fine detail a face shows.
    uint8 or float (S, S, 3) image, float32 (S, S) mask."""
    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY).astype(np.float32)
    laplacian = cv2.Laplacian(grey, cv2.CV_32F, ksize=3)
    return float((laplacian ** 2 * mask).sum() / max(float(mask.sum()), 1.0))


def match_sharpness(image: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``image`` blurred just enough (the first of :data:`SHARPNESS_SIGMAS` that suffices) to be no sharper inside
    ``mask`` than ``reference``: a crisp portrait pasted into a blurred, low-light or distant face would stand out
    (issue 17). Never sharpens. uint8 (S, S, 3) image and reference, float32 (S, S) mask -> uint8 (S, S, 3)."""
    wanted = sharpness(reference, mask)
    if sharpness(image, mask) <= wanted:
        return image
    softened = image
    for sigma in SHARPNESS_SIGMAS:
        softened = cv2.GaussianBlur(image, (0, 0), sigma)
        if sharpness(softened, mask) <= wanted:
            break
    return softened


def fit_similarity(points: np.ndarray, onto: np.ndarray) -> np.ndarray:
    """float (N, 2) ``points`` moved by the least-squares similarity that best lays them onto ``onto``."""
    return transform_points(similarity_affine(points, onto), points)


def target_geometry(landmarks: np.ndarray, blend: float = SHAPE_BLEND) -> np.ndarray:
    """float (68, 2): the source's landmarks moved ``blend`` of the way to the mean face fitted onto them."""
    points = np.asarray(landmarks, np.float64)
    return points + blend * (fit_similarity(MEAN_SHAPE, points) - points)


def replaced_region(landmarks: np.ndarray, size: int = ALIGN_CROP, geometry: np.ndarray | None = None) -> np.ndarray:
    """float32 (size, size) in [0, 1]: what the donor design replaces for a face with float (68, 2) ``landmarks``:
    the union of the source's region and the target geometry's (``geometry``, :func:`target_geometry` of the
    landmarks when not given), so no outline of the source is left inside it. The evaluation pastes its blur and
    pixelation baselines through the same region."""
    geometry = target_geometry(landmarks) if geometry is None else geometry
    return np.maximum(region_mask(landmarks, size), region_mask(geometry, size))


def donor_target(crop: np.ndarray, landmarks: np.ndarray, donor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The generator's target for one face: the donor warped onto the source's pose with :func:`target_geometry`'s
    proportions, softened to the source's sharpness (:func:`match_sharpness`), colour-matched to the source,
    blended over the source's crop through the replaced region (the union of the source's region and the new face's,
    so no outline of the source is left inside it).

    Args:
        crop: uint8 (112, 112, 3) RGB aligned source crop.
        landmarks: float (68, 2) the source's landmarks in crop pixels.
        donor: uint8 (112, 112, 3) RGB donor in :data:`MEAN_SHAPE` (a :func:`blend_donors` entry).
    Returns:
        (uint8 (112, 112, 3) target, float32 (112, 112) region mask).
    Raises:
        ValueError: for invalid landmarks.
    """
    size = crop.shape[0]
    control_points(landmarks, size)  # invalid landmarks fail here, before any arithmetic on them
    geometry = target_geometry(landmarks)
    mask = replaced_region(landmarks, size, geometry)
    warped = match_colour(match_sharpness(warp_image(donor, warp_map(geometry, MEAN_SHAPE, size)), crop, mask), crop, mask)
    alpha = mask[..., None]
    target = np.clip(np.rint(warped * alpha + crop.astype(np.float32) * (1 - alpha)), 0, 255).astype(np.uint8)
    return target, mask


def to_mean_shape(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """uint8 (S, S, 3) aligned crop with float (68, 2) landmarks -> uint8 (S, S, 3) the same face moved onto
    :data:`MEAN_SHAPE`."""
    return warp_image(image, warp_map(MEAN_SHAPE, landmarks, image.shape[0]))


def blend_donors(faces: Sequence[np.ndarray], landmarks: Sequence[np.ndarray]) -> np.ndarray:
    """One donor that is nobody: the pixel average of several aligned crops, each first moved onto
    :data:`MEAN_SHAPE` (k-same style). uint8 (k, S, S, 3) crops and float (k, 68, 2) landmarks -> uint8 (S, S, 3)."""
    if len(faces) == 0 or len(faces) != len(landmarks):
        raise ValueError(f"blend_donors needs as many landmark sets as faces (at least one), got {len(faces)} and {len(landmarks)}")
    moved = [to_mean_shape(face, points).astype(np.float32) for face, points in zip(faces, landmarks)]
    return np.clip(np.rint(np.mean(moved, axis=0)), 0, 255).astype(np.uint8)


def build_donor_pool(images: np.ndarray, landmarks: np.ndarray, labels: np.ndarray, count: int, per_blend: int,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` blended donors, each the average of ``per_blend`` faces of different identities moved onto the mean
    shape (:func:`blend_donors`). Training makes its donors with it, and the export makes the served bank with it from
    the committed portraits (each its own identity).

    Args:
        images: uint8 (N, 112, 112, 3) RGB crops; landmarks: float (N, 68, 2) in crop pixels; labels: int (N,).
    Returns: (uint8 (count, 112, 112, 3) donors, int64 (count, per_blend) the identity labels blended into each).
    """
    identities = len(np.unique(labels))
    if identities < per_blend:
        raise ValueError(f"{per_blend} portraits per donor need as many identities, the data has {identities}: "
                         "lower model.donors_per_blend")
    rng = np.random.default_rng(seed)
    donors = np.empty((count, *images.shape[1:]), np.uint8)
    members = np.empty((count, per_blend), np.int64)
    for number in range(count):
        chosen: list[int] = []
        while len(chosen) < per_blend:
            index = int(rng.integers(len(images)))
            if labels[index] not in labels[chosen]:
                chosen.append(index)
        donors[number] = blend_donors(images[chosen], landmarks[chosen])
        members[number] = labels[chosen]
    return donors, members


def unit_vectors(vectors: np.ndarray) -> np.ndarray:
    """float32 ``vectors`` (any shape, vectors along the last axis) scaled to unit length (a zero vector stays 0)."""
    vectors = np.asarray(vectors, np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def like_blends(identity: np.ndarray, count: int, per_blend: int) -> np.ndarray:
    """Which portraits to blend into each of ``count`` donors so that each blend is of people who look alike: int64
    (count, per_blend) indices into ``identity``, float (N, D) unit identity vectors of the N portraits (E_I's).

    Donor k starts from portrait k (cycling) and adds its ``per_blend - 1`` nearest others by cosine; a set already
    taken moves on to the next-nearest ones. A blend of a woman with two men is an androgynous average that fits
    nobody; blends of alike people keep a recognisable kind of face (and the bank's variety is its portraits'),
    while each stays nobody's real face. Raises ValueError for fewer portraits than ``per_blend``.
    """
    identity = np.asarray(identity, np.float64)
    count_in = len(identity)
    if count_in < per_blend:
        raise ValueError(f"{per_blend} portraits per donor need as many portraits, got {count_in}")
    similarity = identity @ identity.T
    nearest = [[int(j) for j in np.argsort(-similarity[i], kind="stable") if j != i] for i in range(count_in)]
    chosen: list[tuple[int, ...]] = []
    seen: set[frozenset[int]] = set()
    for offset in range(count_in):  # how far down each seed's neighbour list the blend starts
        for seed in range(count_in):
            members = (seed, *nearest[seed][offset : offset + per_blend - 1])
            if len(members) == per_blend and frozenset(members) not in seen:
                seen.add(frozenset(members))
                chosen.append(members)
            if len(chosen) == count:
                return np.array(chosen, np.int64)
    return np.array(chosen, np.int64)  # fewer distinct sets than asked: every one of them


SELF_MATCH = 0.55
"""E_I cosine from which a face is taken for one of a donor's own portraits: a portrait flipped and shrunk scored
0.56-0.87 against itself (median 0.72), 300 LFW strangers at most 0.53 against any committed portrait (p99 0.46)."""


def likest_free(identity: np.ndarray, likeness: np.ndarray, taken: set[int], members: np.ndarray | None = None) -> int | None:
    """The bank entry most like a face: the row of ``likeness`` (float (K, D), the entries' unit identity vectors)
    with the highest cosine to ``identity`` (float (D,) or (D, 1, 1), any length) among rows not in ``taken`` and,
    with ``members`` (float (K, M, D), the unit vectors of the portraits blended into each entry), not blended from a
    portrait the face matches (cosine >= :data:`SELF_MATCH`): a person in the bank's portraits never gets a blend of
    their own face. None when every row is excluded."""
    vector = unit_vectors(np.asarray(identity).reshape(-1))
    scores = likeness @ vector
    own = (members @ vector).max(axis=1) >= SELF_MATCH if members is not None else np.zeros(len(likeness), bool)
    for row in np.argsort(-scores, kind="stable"):
        if int(row) not in taken and not own[row]:
            return int(row)
    return None
