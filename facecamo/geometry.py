# SPDX-License-Identifier: Apache-2.0
"""Point geometry shared by the alignment, the landmark map and the donor warp (numpy only): 2x3 affines in OpenCV's
convention (``xy' = A @ [x, y, 1]``)."""

from __future__ import annotations

import numpy as np


def transform_points(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """float64 (N, 2): float (N, 2) ``points`` moved by the float (2, 3) ``affine``."""
    affine = np.asarray(affine, np.float64)
    return np.asarray(points, np.float64) @ affine[:, :2].T + affine[:, 2]


def similarity_affine(points: np.ndarray, onto: np.ndarray) -> np.ndarray:
    """float64 (2, 3): the least-squares similarity (rotation, scale, shift; Umeyama) laying float (N, 2) ``points``
    onto ``onto``."""
    points, onto = np.asarray(points, np.float64), np.asarray(onto, np.float64)
    mean_p, mean_o = points.mean(axis=0), onto.mean(axis=0)
    p, o = points - mean_p, onto - mean_o
    u, singular, vt = np.linalg.svd(o.T @ p)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ sign @ vt
    scale = float((singular * np.diag(sign)).sum() / max((p ** 2).sum(), 1e-9))
    affine = np.zeros((2, 3))
    affine[:, :2] = scale * rotation
    affine[:, 2] = mean_o - scale * rotation @ mean_p
    return affine
