"""The torch-free frame steps shared by the server and the embedded engine: validation and failing closed."""

from __future__ import annotations

import numpy as np
import pytest

from facecamo import spec
from facecamo.align import FaceAligner
from facecamo.pipeline import RequestError, align_frame, assign_appearance, match_boxes, paste_frame, validate_boxes, validate_frame


def test_generation_failure_is_concealed_never_passed_through(portrait):
    faces = align_frame(FaceAligner(), portrait)
    nan_faces = np.full_like(faces.faces, np.nan)
    out, boxes, status = paste_frame(portrait, nan_faces, faces.affines, faces.boxes, faces.state)
    assert status.tolist() == [spec.STATUS_FALLBACK]
    left, top, right, bottom = boxes[0].astype(int)
    inner = (slice(top + 15, bottom - 15), slice(left + 15, right - 15))
    assert np.abs(out[inner].astype(int) - portrait[inner]).mean() > 5  # blurred: the face is not returned as it was


def test_unaligned_face_is_concealed(portrait):
    faces = align_frame(FaceAligner(), portrait)
    state = np.full_like(faces.state, spec.STATE_UNALIGNED)
    out, _, status = paste_frame(portrait, faces.faces, faces.affines, faces.boxes, state)
    left, top, right, bottom = faces.boxes[0].astype(int)
    assert status.tolist() == [spec.STATUS_FALLBACK]
    assert np.abs(out[top:bottom, left:right].astype(int) - portrait[top:bottom, left:right]).mean() > 5


def test_frame_without_faces_gets_one_placeholder_row_that_paste_drops():
    blank = np.full((50, 60, 3), 7, np.uint8)
    faces = align_frame(FaceAligner(), blank)
    assert faces.faces.shape == (1, 3, 112, 112) and faces.count == 0
    out, boxes, status = paste_frame(blank, faces.faces, faces.affines, faces.boxes, faces.state)
    assert np.array_equal(out, blank) and boxes.shape == (0, 4) and status.shape == (0,)


def test_validation_messages():
    with pytest.raises(RequestError, match="uint8"):
        validate_frame(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(RequestError, match="height, width, 3"):
        validate_frame(np.zeros((4, 4), np.uint8))
    with pytest.raises(RequestError, match="limit"):
        validate_frame(np.zeros((3000, 4000, 3), np.uint8))
    assert validate_frame(np.zeros((3840, 2160, 3), np.uint8)).shape == (3840, 2160, 3)  # portrait 4K is fine
    with pytest.raises(RequestError, match="outside"):
        validate_boxes(np.array([[0, 0, 20, 20]]), (10, 10, 3))
    with pytest.raises(RequestError, match="right > left"):
        validate_boxes(np.array([[5, 5, 1, 9]]), (10, 10, 3))
    boxes3 = np.array([[200, 0, 250, 50], [0, 0, 50, 50], [100, 0, 150, 50]], float)
    assert assign_appearance(boxes3, 5).tolist() == [2, 0, 1]  # default: distinct entries, left to right
    assert assign_appearance(boxes3[:2], 5, np.array([4])).tolist() == [4, 4]
    assert assign_appearance(boxes3[:2], 5, np.array([1, 2])).tolist() == [1, 2]
    with pytest.raises(RequestError, match="one per face"):
        assign_appearance(boxes3, 5, np.array([1, 2]))
    with pytest.raises(RequestError, match="0..4"):
        assign_appearance(boxes3[:1], 5, np.array([5]))
    with pytest.raises(RequestError, match="0..4"):  # checked on a frame without faces too
        assign_appearance(np.zeros((0, 4)), 5, np.array([1, 9]))
    assert assign_appearance(np.zeros((0, 4)), 5, np.array([1, 2])).shape == (0,)


def test_tracked_people_keep_their_appearance_and_newcomers_get_a_free_one():
    previous = np.array([[0, 0, 50, 50], [100, 0, 150, 50]], float)
    moved = np.array([[110, 5, 160, 55], [8, 2, 58, 52], [300, 0, 350, 50]], float)  # both moved, one newcomer
    assert match_boxes(moved, previous) == [1, 0, -1]
    rows = assign_appearance(moved, 6, track_boxes=previous, track_appearance=np.array([3, 0]))
    assert rows.tolist() == [0, 3, 1]  # newcomer: lowest entry no track uses
    fast = np.array([[30, 0, 80, 50]], float)  # little overlap, but the centre moved under 0.6 widths
    assert match_boxes(fast, previous[:1]) == [0]
    with pytest.raises(RequestError, match="one entry per track"):
        assign_appearance(moved, 6, track_boxes=previous, track_appearance=np.array([3]))
