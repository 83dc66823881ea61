# SPDX-License-Identifier: Apache-2.0
"""The paper's alignment on a committed public-domain portrait, and input validation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facecamo.align import (
    ALIGN_CROP, ALIGN_FRAME, FaceAligner, FaceDetector, LandmarkPredictor, alignment_affine, as_rgb_uint8, warp_face,
)


@pytest.fixture(scope="module")
def aligner() -> FaceAligner:
    return FaceAligner()


def test_eye_and_mouth_lines_land_where_the_paper_puts_them(aligner, portrait):
    """Landmarks detected afresh on the aligned 128 frame: eye line at 45% from the top, mouth at 25% from the bottom."""
    face = aligner(portrait)[0]
    frame = warp_face(portrait, alignment_affine(face.landmarks, crop=ALIGN_FRAME), ALIGN_FRAME)
    points = LandmarkPredictor()(frame, (8, 8, 120, 120))
    assert abs(points[36:48, 1].mean() - 57.6) <= 1.0
    assert abs(points[48:68, 1].mean() - 96.0) <= 1.0
    # and upright: the eye centres are level within a degree
    left, right = points[36:42].mean(axis=0), points[42:48].mean(axis=0)
    assert abs(np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0]))) < 1.5


def test_crop_and_affine_are_consistent(aligner, portrait):
    face = aligner(portrait)[0]
    assert face.crop.shape == (ALIGN_CROP, ALIGN_CROP, 3) and face.crop.dtype == np.uint8
    assert face.affine.shape == (2, 3)
    np.testing.assert_array_equal(face.crop, warp_face(portrait, face.affine))
    mapped = face.landmarks @ face.affine[:, :2].T + face.affine[:, 2]
    assert abs(mapped[36:48, 1].mean() - (57.6 - 8)) < 1e-6
    assert abs(mapped[48:68, 1].mean() - (96.0 - 8)) < 1e-6
    extent = mapped[:, 0].min() + mapped[:, 0].max()
    assert abs(extent / 2 - (ALIGN_CROP - 1) / 2) < 1e-6


def test_rotated_copy_gives_the_same_crop(aligner, portrait):
    height, width = portrait.shape[:2]
    padded = cv2.copyMakeBorder(portrait, 100, 100, 100, 100, cv2.BORDER_REPLICATE)
    centre = (padded.shape[1] / 2, padded.shape[0] / 2)
    rotated = cv2.warpAffine(padded, cv2.getRotationMatrix2D(centre, 20, 1.0), padded.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    upright = aligner(padded)[0].crop.astype(np.float64)
    faces = FaceAligner(FaceDetector(upsample=1))(rotated)  # HOG is trained on upright faces; upsampling finds a tilted one
    assert faces, "the 20-degree rotated portrait was not detected"
    turned = faces[0].crop.astype(np.float64)
    centre_region = (slice(16, 96), slice(16, 96))  # the face itself; corners hold background that differs by design
    assert np.abs(upright[centre_region] - turned[centre_region]).mean() < 12.0


def test_blank_image_gives_no_faces(aligner):
    assert aligner(np.full((240, 320, 3), 127, np.uint8)) == []


def test_grayscale_and_rgba_are_accepted(aligner, portrait):
    gray = cv2.cvtColor(portrait, cv2.COLOR_RGB2GRAY)
    rgba = np.dstack([portrait, np.full(portrait.shape[:2], 255, np.uint8)])
    assert len(aligner(gray)) == 1
    assert len(aligner(gray[:, :, None])) == 1
    assert len(aligner(rgba)) == 1


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((0, 0, 3), np.uint8), "non-empty"),
        (np.zeros((10, 10, 3), np.float32), "uint8"),
        (np.zeros((2, 10, 10, 3), np.uint8), "rank"),
        (np.zeros(10, np.uint8), "rank"),
        (np.zeros((10, 10, 2), np.uint8), "channels"),
        ([[0, 1], [2, 3]], "numpy array"),
    ],
)
def test_bad_input_says_what_was_expected(aligner, bad, message):
    with pytest.raises(ValueError, match=message):
        aligner(bad)
    with pytest.raises(ValueError, match=message):
        as_rgb_uint8(bad)


def test_bad_boxes_and_landmarks_are_rejected(portrait):
    predictor = LandmarkPredictor()
    with pytest.raises(ValueError, match="finite"):
        predictor(portrait, (0, 0, float("nan"), 10))
    with pytest.raises(ValueError, match="right > left"):
        predictor(portrait, (50, 50, 10, 10))
    with pytest.raises(ValueError, match="68"):
        alignment_affine(np.zeros((5, 2)))


def test_detector_settings(portrait):
    with pytest.raises(ValueError, match="hog"):
        FaceDetector("yolo")
    assert FaceDetector(min_score=100.0)(portrait) == []
    two = np.concatenate([portrait, portrait], axis=1)
    assert len(FaceDetector()(two)) == 2
    assert len(FaceDetector(max_faces=1)(two)) == 1


def test_cnn_detector_finds_the_portrait(portrait):
    found = FaceDetector("cnn")(portrait)
    assert len(found) == 1 and found[0].score > 0
