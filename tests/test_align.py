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


def test_the_five_point_path_aligns_like_the_68_point_model(portrait):
    """dlib's public-domain 5-point model and the fitted map (the commercial landmark path) give 68 points, and a crop
    within a few pixels of the 68-point model's; the name says which model a predictor is."""
    from facecamo.align import FivePointLandmarkPredictor, landmark_predictor

    box = FaceDetector(upsample=1)(portrait)[0].box
    five, sixty_eight = landmark_predictor("dlib5"), landmark_predictor("dlib68")
    assert isinstance(five, FivePointLandmarkPredictor) and (five.name, sixty_eight.name) == ("dlib5", "dlib68")
    estimate, truth = five(portrait, box), sixty_eight(portrait, box)
    assert estimate.shape == (68, 2) and np.all(np.isfinite(estimate))
    to_crop = alignment_affine(truth)
    error = np.linalg.norm((estimate - truth) @ to_crop[:, :2].T, axis=1).mean()
    assert error < 5.0, f"the 5-point estimate lies {error:.2f} crop px from the 68 points"
    corners = np.array([[0, 0], [111, 0], [0, 111], [111, 111]], np.float64)
    back = cv2.invertAffineTransform(alignment_affine(estimate))
    moved = (corners @ back[:, :2].T + back[:, 2]) @ to_crop[:, :2].T + to_crop[:, 2]
    assert np.linalg.norm(moved - corners, axis=1).mean() < 10.0
    assert FivePointLandmarkPredictor(raw=True)(portrait, box).shape == (5, 2)
    with pytest.raises(ValueError, match="dlib68, dlib5"):
        landmark_predictor("mediapipe")


def test_the_five_to_68_fit_recovers_a_known_layout():
    """training.landmarks5's fit and facecamo.align's map are one another's inverse: faces whose 5 points are their
    68 points' eye corners and nose base, under random similarities and shape noise, are recovered to a fraction
    of a pixel; degenerate points are refused."""
    from facecamo.align import five_to_sixty_eight
    from facecamo.donor import MEAN_SHAPE
    from training.landmarks5 import fit

    rng = np.random.default_rng(0)
    basis = rng.normal(size=(68, 2))  # one shape mode, so the 5 points predict it exactly
    fives, sixty_eights = [], []
    for _ in range(300):
        shape = MEAN_SHAPE + rng.normal(0, 2.0) * basis
        angle, scale, shift = rng.uniform(-0.3, 0.3), rng.uniform(0.5, 3.0), rng.uniform(-50, 50, 2)
        rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        points = shape @ rotation.T + shift
        fives.append(points[[45, 42, 36, 39, 33]])
        sixty_eights.append(points)
    arrays = fit(np.stack(fives), np.stack(sixty_eights), ridge=1e-6)
    error = np.abs(five_to_sixty_eight(fives[0], arrays) - sixty_eights[0]).max()
    assert error < 0.05, error
    with pytest.raises(ValueError, match="eye corners coincide"):
        five_to_sixty_eight(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="5 finite"):
        five_to_sixty_eight(np.full((5, 2), np.nan))


def test_the_five_point_path_needs_no_68_point_file(tmp_path, monkeypatch, portrait):
    """A box given only dlib's 5-point file (FACECAMO_DLIB_MODELS, looked in alone when set) aligns faces with the
    commercial path, and anything asking for the 68-point model fails naming the file and where it looked."""
    import shutil

    from facecamo.align import landmark_predictor
    from facecamo.dlib_models import LANDMARKS_5, dlib_model_path

    shutil.copy(dlib_model_path(LANDMARKS_5), tmp_path / LANDMARKS_5)
    monkeypatch.setenv("FACECAMO_DLIB_MODELS", str(tmp_path))
    faces = FaceAligner(FaceDetector(upsample=1), landmarks="dlib5")(portrait)
    assert len(faces) == 1 and faces[0].crop.shape == (ALIGN_CROP, ALIGN_CROP, 3)
    with pytest.raises(FileNotFoundError, match="shape_predictor_68_face_landmarks.dat.*only that folder"):
        landmark_predictor("dlib68")
