# SPDX-License-Identifier: Apache-2.0
"""The leak benchmark's counting (benchmarks/leak.py): what counts as an unchanged face, by width; orientation."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import PORTRAITS, SHARED
from benchmarks.leak import ReferenceDetector
from benchmarks.leak_counting import UNCHANGED_MAD, FaceTally, compare_frame, orientation_against_input, region_mad, width_bucket
from benchmarks.video_io import iter_upright_frames, reencode_passthrough

YUNET = SHARED / "models" / "face_detector" / "yunet.onnx"
ROTATED_CLIP = SHARED / "samples" / "video" / "new_face_video-90.mp4"


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    """A 240x320 RGB frame with real image texture (a committed portrait, resized)."""
    import cv2

    from facecamo.align import load_rgb

    return cv2.resize(load_rgb(str(PORTRAITS / "congress_B000589.jpg")), (320, 240), interpolation=cv2.INTER_AREA)


def test_width_buckets_split_at_16_24_48_96():
    assert [width_bucket(w) for w in (15.9, 16, 23.9, 24, 47.9, 48, 95.9, 96, 400)] == \
        ["<16", "16-24", "16-24", "24-48", "24-48", "48-96", "48-96", "96+", "96+"]


def test_changed_faces_and_unchanged_faces_are_told_apart_by_width(scene):
    rng = np.random.default_rng(0)
    # Boxes (left, top, width, height): one per bucket from 16-24 to 96+.
    boxes = np.array([[10, 10, 20, 24], [60, 20, 40, 48], [120, 30, 80, 90], [200, 100, 110, 120]], np.float32)
    # The output: the scene with +-3 grey levels of noise everywhere (what a re-encode leaves), then two faces changed:
    # the 40 px one darkened (a recoloured face), the 110 px one strongly blurred (a concealed face).
    import cv2

    output = np.clip(scene.astype(np.int16) + rng.integers(-3, 4, scene.shape), 0, 255).astype(np.uint8)
    output[20:68, 60:100] = (output[20:68, 60:100] * 0.7).astype(np.uint8)
    output[100:220, 200:310] = cv2.GaussianBlur(output[100:220, 200:310], (0, 0), 12)
    tally = FaceTally()
    mads = compare_frame(scene, output, boxes, tally)
    assert tally.found == {"<16": 0, "16-24": 1, "24-48": 1, "48-96": 1, "96+": 1}
    assert tally.unchanged == {"<16": 0, "16-24": 1, "24-48": 0, "48-96": 1, "96+": 0}, mads
    assert mads[0] < UNCHANGED_MAD / 2 and mads[2] < UNCHANGED_MAD / 2  # noise alone stays far under the threshold


def test_h264_reencoding_alone_leaves_faces_unchanged(scene, tmp_path):
    """A real libx264 round trip (CRF 20) of a still clip: every face region stays under the threshold."""
    import av

    source = tmp_path / "still.mp4"
    with av.open(str(source), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"crf": "12"}
        for shift in range(6):  # a slow pan, so frames differ
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.roll(scene, shift, axis=1)), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    target = tmp_path / "passthrough.mp4"
    reencode_passthrough(source, target, crf=20)
    boxes = np.array([[10, 10, 20, 24], [60, 20, 40, 48], [120, 30, 80, 90]], np.float32)
    pairs = list(zip(iter_upright_frames(source), iter_upright_frames(target)))
    assert len(pairs) == 6
    mads = [region_mad(before, after, box) for before, after in pairs for box in boxes]
    assert max(mads) < UNCHANGED_MAD, mads


def test_orientation_finds_how_far_the_output_is_turned(scene):
    for quarter in range(4):
        correlations = orientation_against_input(scene, np.rot90(scene, quarter))
        assert max(correlations, key=correlations.get) == quarter * 90, correlations


def test_rotation_flag_is_applied_when_reading():
    if not (ROTATED_CLIP.is_file() and YUNET.is_file()):
        pytest.skip(f"needs {ROTATED_CLIP} and {YUNET} (the workplace's shared samples)")
    first = next(iter_upright_frames(ROTATED_CLIP))
    assert first.shape == (480, 640, 3)  # stored 480x640 with a -90 degree display matrix
    detector = ReferenceDetector(YUNET)
    # The face (about 165 px wide) is found upright; turned the other way (180 degrees off) YuNet finds nothing.
    assert any(box[2] >= 96 for box in detector(first))
    assert len(detector(np.ascontiguousarray(np.rot90(first, 2)))) == 0



def test_dark_copies_count_passed_through_faces_as_unchanged_and_replaced_ones_as_changed(scene, tmp_path):
    """``--dark``: faces located on the lit frames, compared in the darkened copy with UNCHANGED_MAD_DARK: a face
    passed through (re-encoded) is unchanged, a face the product replaced is changed, though in the dark both differ
    by only a few grey levels."""
    import av

    from benchmarks.leak import count_faces
    from benchmarks.leak_counting import UNCHANGED_MAD_DARK
    from training.realism import darken

    def write(path, frames, crf):
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=25)
            stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
            stream.options = {"crf": str(crf)}
            for rgb in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)

    lit = tmp_path / "lit.mp4"
    write(lit, [np.roll(scene, shift, axis=1) for shift in range(4)], crf=12)
    dark = tmp_path / "dark.mp4"
    reencode_passthrough(lit, dark, crf=20, transform=darken)
    assert np.mean([f.mean() for f in iter_upright_frames(dark)]) < 0.5 * np.mean([f.mean() for f in iter_upright_frames(lit)])
    passthrough = tmp_path / "dark_passthrough.mp4"
    reencode_passthrough(dark, passthrough, crf=20)
    located: list[float] = []

    def lit_only(rgb):  # a detector that finds the face only in lit frames, as a dim scene defeats real ones
        located.append(float(rgb.mean()))
        return np.array([[100, 40, 120, 150, 0.9]], np.float32) if rgb.mean() > 60 else np.zeros((0, 5), np.float32)

    unchanged = count_faces(dark, passthrough, passthrough, lit_only, 0, UNCHANGED_MAD_DARK, 4, lit)
    assert unchanged["faces"]["96+"] == {"found": 4, "unchanged": 4}, unchanged["output_face_mad"]
    import cv2

    replaced = tmp_path / "dark_replaced.mp4"  # the face region concealed (blurred), as dim as the rest
    frames = [f.copy() for f in iter_upright_frames(dark)]
    for frame in frames:
        frame[40:190, 100:220] = cv2.GaussianBlur(frame[40:190, 100:220], (0, 0), 8)
    write(replaced, frames, crf=20)
    changed = count_faces(dark, replaced, passthrough, lit_only, 0, UNCHANGED_MAD_DARK, 4, lit)
    assert changed["faces"]["96+"] == {"found": 4, "unchanged": 0}, changed["output_face_mad"]
    assert changed["output_face_mad"]["p50"] < UNCHANGED_MAD  # the lit threshold would have missed the change
