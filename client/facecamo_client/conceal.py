# SPDX-License-Identifier: Apache-2.0
"""Whole-frame concealment for a frame no engine could process, with numpy alone (the gRPC-only client has no
OpenCV): a coarse mosaic of 24-pixel blocks, nothing of a face recognisable in it."""

from __future__ import annotations

import numpy as np

BLOCK = 24


def conceal_frame(frame: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (H, W, 3) mosaic: each block x block tile replaced by its mean colour."""
    frame = np.asarray(frame)
    height, width = frame.shape[:2]
    rows, cols = -(-height // block), -(-width // block)
    padded = np.pad(frame, ((0, rows * block - height), (0, cols * block - width), (0, 0)), mode="edge").astype(np.float32)
    means = padded.reshape(rows, block, cols, block, -1).mean(axis=(1, 3))
    tiles = np.repeat(np.repeat(means, block, axis=0), block, axis=1)[:height, :width]
    return np.clip(np.rint(tiles), 0, 255).astype(np.uint8)
