# SPDX-License-Identifier: Apache-2.0
"""The one frame pipeline: validation, every failure caused for real and concealed, tracks, many faces."""

from __future__ import annotations

import numpy as np
import pytest

from facecamo import spec
from facecamo.align import load_rgb
from facecamo.paste import paste_face
from facecamo.pipeline import FramePipeline
from facecamo.settings import PipelineSettings
from facecamo.request import RequestError, assign_appearance, validate_boxes, validate_frame
from facecamo.tracking import match_boxes
from facecamo.repository import RepositoryError, open_pipeline
from tests import faults
from tests.conftest import PORTRAITS


@pytest.fixture(scope="module")
def pipeline(repository) -> FramePipeline:
    return open_pipeline(repository)


def faces_unchanged(before: np.ndarray, after: np.ndarray, pipeline: FramePipeline) -> list[float]:
    """For every face the pipeline finds in ``before``: the fraction of the pixels of its paste region (where the
    paste mask weighs more than a half: black and white faces pasted there differ by over 128) that came out
    identical."""
    fractions = []
    for face in pipeline.prepare(before).faces:
        if face.alignment is None:
            left, top, right, bottom = (int(v) for v in face.box)
            region = np.zeros(before.shape[:2], bool)
            region[top:bottom, left:right] = True
        else:
            black, white = (paste_face(before, np.full((112, 112, 3), v, np.uint8), face.alignment.affine) for v in (0, 255))
            region = (white.astype(int) - black > 128).any(axis=2)
        same = (after[region] == before[region]).all(axis=1)
        fractions.append(float(same.mean()))
    return fractions


def identical_inside(before: np.ndarray, after: np.ndarray, box: np.ndarray) -> float:
    """Fraction of identical pixels in the middle half of a face box (the face itself, not the backdrop around it)."""
    left, top, right, bottom = box
    w, h = right - left, bottom - top
    x0, x1, y0, y1 = int(left + w / 4), int(right - w / 4), int(top + h / 4), int(bottom - h / 4)
    return float((after[y0:y1, x0:x1] == before[y0:y1, x0:x1]).all(axis=2).mean())


def two_portraits() -> np.ndarray:
    images = [load_rgb(str(p)) for p in sorted(PORTRAITS.glob("congress_*.jpg"))[:2]]
    return np.ascontiguousarray(np.concatenate(images, axis=1))


def test_portrait_camouflaged_and_faceless_frame_unchanged(pipeline, portrait):
    result = pipeline.run(portrait)
    assert result.status.tolist() == [spec.STATUS_CAMOUFLAGED] and result.failed is None
    assert max(faces_unchanged(portrait, result.frame, pipeline)) < 0.05
    blank = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    empty = pipeline.run(blank)
    np.testing.assert_array_equal(empty.frame, blank)
    assert empty.boxes.shape == (0, 4) and empty.status.shape == (0,)


def test_the_donor_design_replaces_forehead_to_chin(pipeline, portrait):
    """The served (donor) design pastes through the donor's region, forehead to chin and out to the face outline, not
    the paper design's inner ellipse: the pixels above the eyebrows and along the jaw change too."""
    from facecamo.design import DONOR
    from facecamo.donor import control_points

    assert pipeline.design is DONOR and pipeline.bank.dtype == np.uint8
    prepared = pipeline.prepare(portrait)
    face = prepared.faces[0].alignment
    result = pipeline.run(portrait)
    assert result.status.tolist() == [spec.STATUS_CAMOUFLAGED]
    inverse = np.linalg.inv(np.vstack([face.affine, [0, 0, 1]]))[:2]
    points = control_points(face.landmarks) @ inverse[:, :2].T + inverse[:, 2]  # crop -> frame pixels
    brows, forehead, jaw = points[17:27], points[68:78], points[4:13]
    # Half-way between the brows and the forehead points, and just inside the jaw line (towards the nose).
    nose = points[30]
    probes = np.concatenate([(brows + forehead) / 2, jaw + 0.15 * (nose - jaw)])
    changed = [np.abs(result.frame[int(y), int(x)].astype(int) - portrait[int(y), int(x)]).max() > 0 for x, y in probes]
    assert np.mean(changed) >= 0.9, f"only {np.mean(changed):.0%} of forehead and jaw probes changed"


@pytest.mark.parametrize("broken, expected", [
    (b"not an onnx file", "cannot be loaded"),
    (faults.wrong_shape_generator, "expected float32 [1, 3, 112, 112]"),
])
def test_an_engine_refuses_a_generator_that_cannot_work(repository, tmp_path, broken, expected):
    copy = faults.repository_with_generator(repository, tmp_path / "repository", broken)
    with pytest.raises(RepositoryError, match="generator") as caught:
        open_pipeline(copy)
    assert expected in str(caught.value)


@pytest.mark.parametrize("build, why", [
    (faults.nan_for_real_faces_generator, "non-finite"),
    (faults.fails_for_several_faces_generator, "generation failed"),
])
def test_generator_failures_conceal_every_face(repository, tmp_path, build, why):
    pipeline = open_pipeline(faults.repository_with_generator(repository, tmp_path / "repository", build))
    frame = two_portraits()
    result = pipeline.run(frame)
    assert len(result.status) == 2 and (result.status == spec.STATUS_FALLBACK).all()
    unchanged = faces_unchanged(frame, result.frame, pipeline)
    # No face comes back as it was: at most a stray pixel in a flat patch equals its blurred value by coincidence.
    assert len(unchanged) == 2 and max(unchanged) < 1e-3, unchanged


def test_degenerate_landmarks_conceal_the_face(repository, portrait):
    class CollapsedLandmarks:  # dlib never returns this for a real face: the one failure caused by a stand-in
        def __call__(self, image, box):
            return np.zeros((68, 2))

    pipeline = open_pipeline(repository)
    pipeline.landmarks = CollapsedLandmarks()
    result = pipeline.run(portrait)
    assert result.status.tolist() == [spec.STATUS_FALLBACK]
    assert identical_inside(portrait, result.frame, result.boxes[0]) < 0.01


def test_a_detector_returning_nan_conceals_the_whole_frame(repository, tmp_path, portrait):
    """NaN from the detector would read as "no face here": the frame is concealed whole and marked failed."""
    pipeline = open_pipeline(faults.repository_with_detector(repository, tmp_path / "repository", faults.nan_for_real_images_detector))
    result = pipeline.run(portrait)
    assert result.failed and "detection failed" in result.failed and "not finite" in result.failed
    assert (result.frame == portrait).all(axis=2).mean() < 0.05


def test_small_faces_are_concealed_and_marked(pipeline, portrait):
    import cv2

    small = cv2.resize(portrait, (portrait.shape[1] // 6, portrait.shape[0] // 6), interpolation=cv2.INTER_AREA)
    frame = np.full((240, 320, 3), 90, np.uint8)
    frame[50 : 50 + small.shape[0], 60 : 60 + small.shape[1]] = small
    result = pipeline.run(frame)
    assert len(result.status) == 1, "CenterFace finds a face of about 25 px"
    assert result.status.tolist() == [spec.STATUS_CONCEALED]
    assert identical_inside(frame, result.frame, result.boxes[0]) < 0.05


def test_a_track_covers_a_face_the_detector_did_not_report(pipeline, portrait):
    blank = np.full_like(portrait, 128)  # no face to detect: the track alone says someone is here
    box = np.array([[60, 60, 170, 200]], np.float32)
    result = pipeline.run(portrait.copy(), track_boxes=box, track_appearance=np.array([5], np.int32))
    assert result.sources.count("detected") == 1  # the detected face matched the track: no duplicate
    assert result.appearance.tolist() == [5]
    covered = pipeline.run(blank, track_boxes=box, track_appearance=np.array([5], np.int32))
    assert covered.sources == ["track"] and len(covered.status) == 1
    assert not np.array_equal(covered.frame[60:200, 60:170], blank[60:200, 60:170]) or covered.status[0] != spec.STATUS_CAMOUFLAGED


def test_per_box_appearance_pairs_with_the_given_boxes_and_tracks_still_cover(pipeline):
    frame = two_portraits()
    height, width = frame.shape[:2]
    boxes = np.clip(pipeline.run(frame).boxes, 0, [width, height, width, height])
    elsewhere = np.array([[10, 10, 60, 70]], np.float32)  # a tracked person the detector cannot see here
    # the second given box is also a track's own box (as when the SDK skips detection): it keeps its own entry
    result = pipeline.run(frame, appearance=np.array([4, 6], np.int32), boxes=boxes,
                          track_boxes=np.concatenate([boxes[1:], elsewhere]), track_appearance=np.array([2, 9], np.int32))
    assert result.appearance.tolist() == [4, 6, 9] and result.sources[2] == "track"
    np.testing.assert_allclose(result.boxes[:2], boxes, atol=1e-3)
    one = pipeline.run(frame, appearance=np.array([7], np.int32), track_boxes=elsewhere, track_appearance=np.array([9], np.int32))
    assert one.appearance.tolist() == [7, 7, 7] and one.sources == ["detected", "detected", "track"]
    with pytest.raises(RequestError, match="2 entries but no FACE_BOXES"):  # detected faces' order is not known
        pipeline.run(frame, appearance=np.array([4, 6], np.int32))
    with pytest.raises(RequestError, match="3 entries for 2 FACE_BOXES"):
        pipeline.run(frame, appearance=np.array([4, 6, 7], np.int32), boxes=boxes)


def test_more_faces_than_one_network_batch_are_all_camouflaged(repository):
    settings = PipelineSettings(max_batch=4)  # a small batch makes several passes cheap to test
    import dataclasses

    base = open_pipeline(repository)
    pipeline = FramePipeline(base.networks, base.bank, dataclasses.replace(base.settings, max_batch=settings.max_batch))
    images = [load_rgb(str(p)) for p in sorted(PORTRAITS.glob("congress_*.jpg"))[:10]]
    frame = np.ascontiguousarray(np.concatenate(images, axis=1))
    result = pipeline.run(frame)
    assert len(result.status) == 10 and (result.status == spec.STATUS_CAMOUFLAGED).all()
    assert max(faces_unchanged(frame, result.frame, pipeline)) < 0.05


def test_faces_over_the_per_frame_limit_are_concealed(repository):
    import dataclasses

    base = open_pipeline(repository)
    pipeline = FramePipeline(base.networks, base.bank, dataclasses.replace(base.settings, max_faces=3))
    frame = np.ascontiguousarray(np.concatenate([load_rgb(str(p)) for p in sorted(PORTRAITS.glob("congress_*.jpg"))[:5]], axis=1))
    result = pipeline.run(frame)
    assert len(result.status) == 5
    assert (result.status == spec.STATUS_CAMOUFLAGED).sum() == 3 and (result.status == spec.STATUS_FALLBACK).sum() == 2
    for box in result.boxes:
        assert identical_inside(frame, result.frame, box) < 0.05


def test_settings_round_trip_and_bad_values_are_named():
    settings = PipelineSettings(detector="hog", min_face_px=40.0, detector_threshold=0.45)
    assert PipelineSettings.from_strings(settings.as_strings()) == settings
    with pytest.raises(ValueError, match="min_face_px"):
        PipelineSettings.from_strings({"min_face_px": "big"})
    with pytest.raises(ValueError, match="centerface, hog or cnn"):
        PipelineSettings.from_strings({"detector": "yolo"})


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
    with pytest.raises(RequestError) as caught:  # a message never echoes a whole array
        assign_appearance(boxes3[:1], 5, np.arange(100, 5100))
    assert len(str(caught.value)) < 300


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


def test_the_pytorch_path_matches_onnx_runtime(tiny_checkpoint, pipeline, detector_onnx):
    """Evaluation's path (networks in PyTorch) and the engines' (ONNX Runtime) run the same pipeline: same faces,
    same statuses, pixels within rounding. The served path is compared with the embedded one in test_client."""
    import torch

    from training.camouflage import TorchCamouflager
    from training.weights import load_inference_net

    net, _, _ = load_inference_net(tiny_checkpoint)
    torch_path = TorchCamouflager(net, detector=detector_onnx)
    frame = two_portraits()
    served_like = pipeline.run(frame, appearance=np.array([3], np.int32))
    out, boxes, status = torch_path.camouflage(frame, torch.from_numpy(pipeline.bank[3:4]))
    np.testing.assert_allclose(boxes, served_like.boxes, atol=1e-3)
    assert status.tolist() == served_like.status.tolist() == [spec.STATUS_CAMOUFLAGED] * 2
    assert np.abs(out.astype(int) - served_like.frame).max() <= 2


def test_like_blends_blend_alike_portraits_and_never_the_same_set_twice():
    from facecamo.donor import like_blends

    rng = np.random.default_rng(0)
    centres = np.eye(8)[:2]  # two kinds of face: 4 portraits near one direction, 5 near another
    vectors = np.concatenate([centres[0] + 0.1 * rng.normal(size=(4, 8)), centres[1] + 0.1 * rng.normal(size=(5, 8))])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    members = like_blends(vectors, 6, 3)
    assert members.shape == (6, 3) and len({frozenset(m) for m in members.tolist()}) == 6
    kinds = (members >= 4).astype(int)
    assert all(len(set(row)) == 1 for row in kinds.tolist()), members  # no blend mixes the two kinds
    with pytest.raises(ValueError, match="3 portraits per donor"):
        like_blends(vectors[:2], 4, 3)


def test_a_face_gets_the_free_donor_most_like_it(pipeline, portrait):
    """With the bank's likeness vectors a face without APPEARANCE_INDEX or a track gets the donor most like it; an
    explicit entry still wins, a track's entry is not given to anyone else, and two faces in a frame get two."""
    from facecamo.spec import to_model_input

    crop = pipeline.prepare(portrait).faces[0].alignment.crop
    vector = pipeline.networks.encode_identity(to_model_input(crop[None])).reshape(-1)
    vector /= np.linalg.norm(vector)
    rng = np.random.default_rng(1)
    likeness = rng.normal(size=(pipeline.bank_size, vector.size)).astype(np.float32)
    likeness -= np.outer(likeness @ vector, vector)  # every other entry unlike the face (orthogonal to it)
    likeness[5], likeness[9] = vector, vector + 0.5 * likeness[9] / np.linalg.norm(likeness[9])  # the likest, the next
    alike = FramePipeline(pipeline.networks, pipeline.bank, pipeline.settings, pipeline.landmarks, pipeline.design, likeness)
    assert alike.run(portrait).appearance.tolist() == [5]
    assert alike.run(portrait, appearance=np.array([2], np.int32)).appearance.tolist() == [2]
    elsewhere = np.array([[0, 0, 10, 10]], np.float32)  # a tracked person somewhere else holds entry 5
    held = alike.run(portrait, track_boxes=elsewhere, track_appearance=np.array([5], np.int32))
    assert held.appearance.tolist()[0] == 9
    twice = np.ascontiguousarray(np.concatenate([portrait, portrait], axis=1))
    assert sorted(alike.run(twice).appearance.tolist()) == [5, 9]
    # a person who is one of donor 5's portraits never gets donor 5 (a blend of their own face)
    members = np.repeat(likeness[:, None], 3, axis=1) * 0.0 + rng.normal(size=(pipeline.bank_size, 3, vector.size)).astype(np.float32)
    members -= (members @ vector)[..., None] * vector  # nobody else's portrait is like the face
    members[5, 1] = vector
    guarded = FramePipeline(pipeline.networks, pipeline.bank, pipeline.settings, pipeline.landmarks, pipeline.design,
                            likeness, members)
    assert guarded.run(portrait).appearance.tolist() == [9]
    with pytest.raises(ValueError, match="one per donor"):
        FramePipeline(pipeline.networks, pipeline.bank, pipeline.settings, pipeline.landmarks, pipeline.design, likeness[:3])


def test_a_repositorys_likeness_vectors_are_checked_against_its_bank(repository, tmp_path):
    import shutil

    from facecamo.repository import LIKENESS_FILE

    copy = tmp_path / "repository"
    shutil.copytree(repository, copy)
    folder = copy / spec.ENSEMBLE / "1"
    opened = open_pipeline(copy)
    assert opened.likeness is not None and opened.members is not None and len(opened.members) == len(opened.bank) and opened.members.shape[1] >= 2
    np.save(folder / LIKENESS_FILE, np.zeros((3, 8), np.float32))
    with pytest.raises(RepositoryError, match="one finite vector per entry"):
        open_pipeline(copy)
    (folder / LIKENESS_FILE).unlink()  # a repository exported before them: the next free donor, as before
    assert open_pipeline(copy).likeness is None


def test_the_donor_benchmark_tells_blends_of_women_men_and_both_apart():
    from benchmarks.donors import blend_kinds

    women = {"w1.jpg", "w2.jpg", "w3.jpg"}
    assert blend_kinds(["w1.jpg + w2.jpg + w3.jpg", "m1.jpg + m2.jpg + m3.jpg", "w1.jpg + m1.jpg + m2.jpg"], women) == \
        ["women", "men", "mixed"]
