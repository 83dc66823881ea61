# SPDX-License-Identifier: Apache-2.0
"""Tracks in the SDK's stream: one appearance per person whatever the number of frames in flight, and faces covered
in frames where detection is skipped or misses them (the embedded engine; the server runs the same pipeline)."""

from __future__ import annotations

from collections import defaultdict

import cv2
import numpy as np
import pytest

from facecamo_client import EmbeddedEngine, FaceTracker, InvalidInputError
from tests.conftest import ROOT
from tests.test_client import moving_face_frames

VIDEO = ROOT / "assets" / "video" / "video_01.mp4"


@pytest.fixture(scope="module")
def engine(repository):
    return EmbeddedEngine(repository)


def video_frames(count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(VIDEO))
    frames = []
    while len(frames) < count:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def test_each_person_keeps_one_appearance_with_four_frames_in_flight(engine):
    frames = video_frames(40)
    looks: dict[int, set[int]] = defaultdict(set)
    seen: dict[int, int] = defaultdict(int)
    for result in engine.stream(frames, max_in_flight=4):
        for face in result.faces:
            looks[face.track_id].add(face.appearance)
            seen[face.track_id] += 1
    steady = [track for track, count in seen.items() if count >= 10]
    assert len(steady) >= 2, f"the clip shows several people for the whole 40 frames, tracked: {dict(seen)}"
    assert all(len(looks[track]) == 1 for track in steady), {t: looks[t] for t in steady}


def test_tracks_cover_the_frames_where_detection_is_skipped(engine, portrait):
    frames = moving_face_frames(portrait, 12)
    results = list(engine.stream(frames, max_in_flight=1, detect_every=3))
    assert [len(r.faces) for r in results] == [1] * 12
    assert [r.faces[0].source for r in results] == ["detected", "track", "track"] * 4
    for frame, result in zip(frames, results):
        left, top, right, bottom = (int(v) for v in result.faces[0].box)
        inner = (slice(top + (bottom - top) // 4, bottom - (bottom - top) // 4),
                 slice(left + (right - left) // 4, right - (right - left) // 4))
        assert (result.frame[inner] == frame[inner]).all(axis=2).mean() < 0.05


def hidden_in_frame_4(portrait: np.ndarray) -> list[np.ndarray]:
    """8 frames of a sliding face, hidden in frame 4 (an occlusion the detector cannot see through)."""
    frames = moving_face_frames(portrait, 8)
    frames[4] = frames[4].copy()
    frames[4][10:285] = 40
    return frames


def test_a_person_the_detector_misses_for_a_frame_stays_covered(engine, portrait):
    frames = hidden_in_frame_4(portrait)
    assert not engine.camouflage(frames[4]).faces, "nothing to detect in the hidden frame"
    results = list(engine.stream(frames, max_in_flight=1))
    assert [len(r.faces) for r in results] == [1] * 8
    assert results[4].faces[0].source == "track"
    assert len({r.faces[0].track_id for r in results}) == 1 and len({r.faces[0].appearance for r in results}) == 1


def test_a_fixed_appearance_keeps_tracking_on(engine, portrait):
    """stream(appearance=5) turned tracking off: the hidden frame came back with no face, uncovered."""
    results = list(engine.stream(hidden_in_frame_4(portrait), max_in_flight=2, appearance=5))
    assert [len(r.faces) for r in results] == [1] * 8
    assert results[4].faces[0].source == "track"
    assert {face.appearance for r in results for face in r.faces} == {5}
    assert len({r.faces[0].track_id for r in results}) == 1


@pytest.mark.parametrize("choice", [{0: 6}, lambda track_id: 6 + track_id], ids=["mapping", "callable"])
def test_appearance_chosen_per_track_id_holds_from_the_first_frame(engine, portrait, choice):
    results = list(engine.stream(hidden_in_frame_4(portrait), max_in_flight=2, appearance=choice))
    assert [len(r.faces) for r in results] == [1] * 8
    assert [r.faces[0].track_id for r in results] == [0] * 8 and results[4].faces[0].source == "track"
    assert [r.faces[0].appearance for r in results] == [6] * 8  # the first frame is re-run under the chosen look


def test_a_stream_refuses_a_list_of_appearances(engine, portrait):
    with pytest.raises(InvalidInputError, match="no order known in advance"):
        engine.stream(moving_face_frames(portrait, 2), appearance=[1, 2])
    with pytest.raises(InvalidInputError, match="needs track=True"):
        engine.stream(moving_face_frames(portrait, 2), appearance={0: 1}, track=False)


def test_tracker_predicts_with_constant_velocity_and_forgets_after_max_missed():
    from facecamo_client.result import FaceResult

    tracker = FaceTracker(max_missed=3)
    for index in range(3):
        tracker.update([FaceResult((10.0 + 5 * index, 0.0, 50.0 + 5 * index, 40.0), "camouflaged", 2)], index)
    boxes, looks = tracker.hints(5)
    np.testing.assert_allclose(boxes[0], [35, 0, 75, 40], atol=1e-4)  # three frames ahead at 5 px per frame
    assert looks.tolist() == [2]
    tracker.update([FaceResult((40.0, 0.0, 80.0, 40.0), "camouflaged", 7)], 6)  # a different look reported: kept 2
    assert tracker.tracks[0].appearance == 2
    for index in range(7, 11):
        tracker.update([], index)
    assert tracker.hints(11) is None


def test_hints_stay_within_the_engines_limit_keeping_the_most_recent_tracks():
    from facecamo_client.result import FaceResult

    tracker = FaceTracker(max_missed=50)
    for index in range(30):  # thirty people, one new each frame, far apart
        tracker.update([FaceResult((100.0 * index, 0.0, 100.0 * index + 40, 40.0), "camouflaged", index)], index)
    boxes, looks = tracker.hints(30, limit=5)
    assert len(boxes) == 5 and sorted(looks.tolist()) == [25, 26, 27, 28, 29]
