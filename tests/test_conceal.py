# SPDX-License-Identifier: Apache-2.0
"""The one whole-frame concealment (facecamo/conceal.py) that the pipeline, the engines and the command line share."""

from __future__ import annotations

import numpy as np
import pytest

from facecamo.conceal import BLOCK, conceal_frame


@pytest.mark.parametrize("shape", [(480, 640, 3), (37, 53, 3), (1, 1, 3)])
def test_no_pixel_of_the_frame_passes_through(shape):
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, shape, dtype=np.uint8)
    frame[: shape[0] // 2] = 128  # flat areas, where a mosaic would leave pixels as they were
    concealed = conceal_frame(frame)
    assert concealed.shape == frame.shape and concealed.dtype == np.uint8
    assert np.all(np.any(concealed != frame, axis=2)), "a pixel came back unchanged"


def test_detail_smaller_than_a_tile_is_gone():
    frame = np.zeros((96, 96, 3), np.uint8)
    frame[::2] = 255  # stripes one pixel high: all detail, no tile-level structure
    concealed = conceal_frame(frame)
    tiles = concealed.reshape(96 // BLOCK, BLOCK, 96 // BLOCK, BLOCK, 3)
    assert np.all(tiles.std(axis=(1, 3)) == 0), "each tile must be one colour"
    assert np.abs(concealed.astype(int) - frame).mean() > 100


def test_a_frame_that_is_not_an_image_is_refused_clearly():
    with pytest.raises(ValueError, match=r"uint8 \(H, W, C\)"):
        conceal_frame(np.zeros((0, 10, 3), np.uint8))
