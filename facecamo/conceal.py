# SPDX-License-Identifier: Apache-2.0
"""Whole-frame concealment, the one fail-closed answer for a frame whose faces are unknown (detection failed, the
engine or the server failed on it): numpy alone, so the pipeline, the embedded engine, the gRPC-only client (which
has no OpenCV) and the command line all write the same concealed frame."""

from __future__ import annotations

import numpy as np

BLOCK = 24
"""Mosaic tile, in frame pixels (the size all three earlier whole-frame concealments used). A face of 120 px keeps
5 tiles across, nothing a viewer recognises; a face of 400 px (the largest in 1080p) keeps about 16, a coarse
silhouette. This is the last resort for a frame whose faces are unknown, not the per-face concealment."""


def conceal_frame(frame: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (H, W, 3): each ``block`` x ``block`` tile replaced by its mean colour.

    A pixel the mosaic happens to leave at its input value (inside a flat tile) is shifted by 16 in every channel,
    so no pixel of the input passes through as it was (a checker for "the frame came back unchanged" can rely on
    every pixel differing)."""
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"conceal_frame takes a uint8 (H, W, C) frame, got shape {frame.shape}")
    height, width = frame.shape[:2]
    rows, cols = -(-height // block), -(-width // block)
    padded = np.pad(frame, ((0, rows * block - height), (0, cols * block - width), (0, 0)), mode="edge").astype(np.float32)
    means = padded.reshape(rows, block, cols, block, -1).mean(axis=(1, 3))
    tiles = np.clip(np.rint(np.repeat(np.repeat(means, block, axis=0), block, axis=1)[:height, :width]), 0, 255).astype(np.uint8)
    unchanged = np.all(tiles == frame, axis=2)
    tiles[unchanged] ^= 0x10
    return tiles
