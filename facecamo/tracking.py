# SPDX-License-Identifier: Apache-2.0
"""Matching face boxes across frames (numpy only, so the gRPC-only client can track without OpenCV or dlib)."""

from __future__ import annotations

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of float (N, 4) and (M, 4) boxes -> (N, M)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    left = np.maximum(a[:, None, 0], b[None, :, 0])
    top = np.maximum(a[:, None, 1], b[None, :, 1])
    right = np.minimum(a[:, None, 2], b[None, :, 2])
    bottom = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def match_boxes(boxes: np.ndarray, previous: np.ndarray, min_iou: float = 0.2, max_centre_shift: float = 0.6) -> list[int]:
    """Greedy IoU/centre matching: for each of ``boxes`` (N, 4) the index of its ``previous`` (M, 4) box, or -1.

    Pairs are taken by decreasing IoU; a pair with IoU below ``min_iou`` still matches when the centres are closer
    than ``max_centre_shift`` times the previous box's width (a fast-moving face overlaps little between frames).
    """
    boxes, previous = np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(previous, np.float64).reshape(-1, 4)
    match = [-1] * len(boxes)
    if len(boxes) == 0 or len(previous) == 0:
        return match
    iou = box_iou(boxes, previous)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    previous_centres = (previous[:, :2] + previous[:, 2:]) / 2
    shift = np.linalg.norm(centres[:, None] - previous_centres[None], axis=2) / np.maximum(previous[None, :, 2] - previous[None, :, 0], 1e-9)
    score = np.where(iou >= min_iou, 1.0 + iou, np.where(shift <= max_centre_shift, 1.0 - shift, 0.0))
    used: set[int] = set()
    for flat in np.argsort(-score, axis=None):
        i, j = np.unravel_index(flat, score.shape)
        if score[i, j] <= 0:
            break
        if match[i] == -1 and j not in used:
            match[i] = int(j)
            used.add(int(j))
    return match


def nearest_to_centre(boxes: np.ndarray, shape: tuple[int, ...]) -> int:
    """Index of the box (float (N, 4), N >= 1) whose centre is nearest the centre of an image of ``shape`` (H, W, ...):
    datasets such as LFW centre the labelled person, whoever else is in the picture."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    height, width = shape[:2]
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    return int(np.argmin(((centres - (width / 2, height / 2)) ** 2).sum(axis=1)))
