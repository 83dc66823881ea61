# SPDX-License-Identifier: Apache-2.0
"""The donor-guided design (issue 11): the numpy/OpenCV donor geometry that training and serving share
(:mod:`facecamo.donor`), the landmarks `make prepare` keeps, the donor targets training makes from them
(:mod:`training.donors`, :class:`training.data.PairSampler`), the donor losses, and a donor run end to end.

Real data throughout: the committed portraits prepared by the real aligner (the ``prepared`` fixture), their dlib
landmarks, blends of them as donors."""

from __future__ import annotations

import csv
import shutil
import signal
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from facecamo.donor import (
    MEAN_SHAPE,
    blend_donors,
    control_points,
    donor_target,
    fit_similarity,
    region_mask,
    replaced_region,
    target_geometry,
    to_mean_shape,
    warp_image,
    warp_map,
)
from training.checkpoint import latest_checkpoint, load_checkpoint
from training.data import FaceDataset, PairSampler, to_model_range, to_uint8
from training.donors import build_donor_pool, build_targets
from training.losses import (
    DONOR_TERMS,
    TERMS,
    augment_for_teacher,
    coarse_difference_loss,
    ssim_28,
    target_coarse_loss,
    terms_for,
)
from training.metrics import ssim_coarse
from training.models.donor import DonorCamouflageNet
from training.train import main as train_main
from training.train import preview_faces
from training.weights import load_inference_net

SIZE = 112
# The paper's alignment (facecamo.align): eye line at 45% and mouth line at 75% of a 128 frame, crop offset 8 px;
# x centred on the mid-point of the leftmost and rightmost landmarks.
EYE_LINE_Y, MOUTH_LINE_Y, CENTRE_X = 0.45 * 128 - 8, 0.75 * 128 - 8, 55.5
NOSE_TIP = 30


@pytest.fixture(scope="module")
def faces(prepared) -> FaceDataset:
    """The prepared training faces: uint8 (18, 112, 112, 3) images, float64 (18, 68, 2) landmarks, 6 identities of 3."""
    dataset = FaceDataset(prepared, "train", progress=False)
    assert dataset.landmarks is not None, "prepare wrote no landmarks.npy beside manifest.csv"
    return dataset


def similarity(points: np.ndarray, scale: float, angle: float, shift: tuple[float, float]) -> np.ndarray:
    """float (n, 2) points rotated by ``angle`` radians and scaled about the mean shape's centre, then shifted."""
    centre = MEAN_SHAPE.mean(axis=0)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return (points - centre) @ rotation.T * scale + centre + np.asarray(shift)


def in_crop(point: np.ndarray, margin: int = 0) -> bool:
    return bool(np.all((point >= margin) & (point <= SIZE - 1 - margin)))


# -- geometry --------------------------------------------------------------------------------------------------

def test_warp_map_of_the_mean_shape_onto_itself_is_the_identity():
    mapping = warp_map(MEAN_SHAPE, MEAN_SHAPE)
    assert mapping.shape == (SIZE, SIZE, 2) and mapping.dtype == np.float32
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    np.testing.assert_allclose(mapping, np.stack([xs, ys], axis=-1), atol=1e-6)


@pytest.mark.parametrize("scale, angle, shift, bend", [(1.04, 0.04, (2.0, -1.5), 1.5), (0.95, -0.06, (-3.0, 2.0), -2.0)])
def test_warp_map_carries_every_landmark_onto_its_counterpart(scale, angle, shift, bend):
    # A plausible face: the mean shape turned, scaled, shifted and bent a little, on whole pixels so that the map is
    # read exactly at each landmark, a vertex of every triangle around it (no rounding between).
    face = similarity(MEAN_SHAPE, scale, angle, shift)
    face[:, 0] += bend * np.sin(face[:, 1] / 25.0)
    face = np.round(face)
    mapping = warp_map(face, MEAN_SHAPE)
    checked = 0
    for k, (x, y) in enumerate(face.astype(int)):
        if in_crop(np.array([x, y])):
            np.testing.assert_allclose(mapping[y, x], MEAN_SHAPE[k], atol=0.01, err_msg=f"landmark {k}")
            checked += 1
    assert checked >= 60  # only the chin may leave the crop
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    assert np.abs(mapping - np.stack([xs, ys], axis=-1)).max() > 2  # it moved something
    # The image follows the map: a dot drawn at a mean-shape landmark lands on the face's landmark.
    dot = np.zeros((SIZE, SIZE, 3), np.uint8)
    cv2.circle(dot, tuple(int(v) for v in np.round(MEAN_SHAPE[NOSE_TIP])), 2, (255, 255, 255), -1)
    moved = warp_image(dot, mapping)[..., 0].astype(np.float64)
    ys, xs = np.nonzero(moved > 127)
    np.testing.assert_allclose([xs.mean(), ys.mean()], face[NOSE_TIP] + (np.round(MEAN_SHAPE[NOSE_TIP]) - MEAN_SHAPE[NOSE_TIP]) * scale,
                               atol=1.0)


def test_real_faces_move_onto_the_mean_shape(faces):
    # Towards the mean shape (to_mean_shape's direction) the destination triangles never fold, whatever the face.
    for landmarks in faces.landmarks:
        mapping = warp_map(MEAN_SHAPE, landmarks)
        for k, point in enumerate(np.round(MEAN_SHAPE).astype(int)):
            if in_crop(point, margin=2):
                x, y = point
                assert np.abs(mapping[y, x] - landmarks[k]).max() < 1.0, f"landmark {k}"


def test_target_geometry_keeps_pose_and_moves_proportions_to_the_mean(faces):
    turned = similarity(MEAN_SHAPE, 1.07, 0.1, (3.0, -2.0))
    np.testing.assert_allclose(fit_similarity(MEAN_SHAPE, turned), turned, atol=1e-9)  # a similarity is recovered
    np.testing.assert_allclose(target_geometry(turned), turned, atol=1e-9)  # the mean face in any pose stays put
    for landmarks in faces.landmarks[::3]:
        np.testing.assert_array_equal(target_geometry(landmarks, blend=0.0), landmarks)
        fitted_mean = fit_similarity(MEAN_SHAPE, landmarks)
        before = np.linalg.norm(landmarks - fitted_mean, axis=1).mean()
        after = np.linalg.norm(target_geometry(landmarks) - fitted_mean, axis=1).mean()
        assert after == pytest.approx(before / 2, rel=0.05)
        # the pose stays: eyes and mouth hardly move
        moved = target_geometry(landmarks)
        for part in (slice(36, 48), slice(48, 68)):
            assert np.linalg.norm(moved[part].mean(0) - landmarks[part].mean(0)) < 3.0


def test_control_points_reject_invalid_landmarks():
    for bad in (np.full((68, 2), np.nan), np.zeros((67, 2)), np.full((68, 2), 50.0)):
        with pytest.raises(ValueError):
            control_points(bad)


@pytest.mark.parametrize("which", ["mean shape", "first face", "mirrored face", "last face"])
def test_region_mask_replaces_forehead_to_chin(faces, which):
    landmarks = {"mean shape": MEAN_SHAPE, "first face": faces.landmarks[0], "mirrored face": faces.landmarks[1],
                 "last face": faces.landmarks[-1]}[which]
    mask = region_mask(landmarks)
    assert mask.shape == (SIZE, SIZE) and mask.dtype == np.float32
    assert mask.min() >= 0 and mask.max() <= 1
    assert not mask[:2].any() and not mask[-2:].any() and not mask[:, :2].any() and not mask[:, -2:].any()
    assert mask[0, 0] == mask[0, -1] == mask[-1, 0] == mask[-1, -1] == 0
    nose = np.round(landmarks[NOSE_TIP]).astype(int)
    assert mask[nose[1], nose[0]] == pytest.approx(1.0, abs=1e-3)
    eyes, mouth = landmarks[36:48].mean(0), landmarks[48:68].mean(0)
    forehead = np.round((landmarks[21] + landmarks[22]) / 2 + 0.3 * (eyes - mouth)).astype(int)  # above the brows
    assert forehead[1] < landmarks[17:27, 1].min() - 4
    assert mask[forehead[1], forehead[0]] > 0.9
    # The region is the hull of the jaw line and the forehead: full well inside it, nothing outside it.
    points = control_points(landmarks)
    hull = np.zeros((SIZE, SIZE), np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(np.round(np.concatenate([points[:17], points[68:78]])).astype(np.int32)), 1)
    core = cv2.erode(hull, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (25, 25)), borderValue=0)
    assert core.sum() > 1500 and mask[core > 0].min() > 0.95
    assert mask[hull == 0].max() < 0.1
    assert (mask > 0.5).sum() > 0.6 * hull.sum()
    for jaw in (2, 8, 14):  # cheeks and chin, a third of the way in from the jaw line
        point = np.round(landmarks[jaw] + (landmarks[NOSE_TIP] - landmarks[jaw]) / 3).astype(int)
        if in_crop(point, margin=4):
            assert mask[point[1], point[0]] > 0.8, f"jaw point {jaw}"


# -- donors and targets ----------------------------------------------------------------------------------------

def test_donor_target_replaces_only_the_region(faces):
    donor = blend_donors(faces.images[[3, 6, 9]].numpy(), faces.landmarks[[3, 6, 9]])
    crop, landmarks = faces.images[0].numpy(), faces.landmarks[0]
    target, mask = donor_target(crop, landmarks, donor)
    assert target.shape == (SIZE, SIZE, 3) and target.dtype == np.uint8 and mask.dtype == np.float32
    assert np.all(mask >= region_mask(landmarks))  # at least the source's own region is replaced
    np.testing.assert_array_equal(mask, np.maximum(region_mask(landmarks), region_mask(target_geometry(landmarks))))
    np.testing.assert_array_equal(mask, replaced_region(landmarks))  # the region the evaluation's baselines use too
    outside = mask == 0
    assert outside.sum() > 2000
    np.testing.assert_array_equal(target[outside], crop[outside])
    inside = mask > 0.99
    difference = np.abs(target.astype(np.int16) - crop.astype(np.int16))
    assert difference[inside].mean() > 10, "the region still shows the source"
    # colour-matched: the donor takes the source's tone
    weight = mask[..., None].astype(np.float64)
    np.testing.assert_allclose((target * weight).sum(axis=(0, 1)) / weight.sum(),
                               (crop * weight).sum(axis=(0, 1)) / weight.sum(), atol=4)
    for bad in (np.full((68, 2), np.nan), np.where(np.arange(68)[:, None] == 5, np.inf, landmarks)):
        with pytest.raises(ValueError):
            donor_target(crop, bad, donor)


def test_donor_target_is_never_sharper_than_a_blurred_face(faces):
    """A crisp donor pasted into a blurred (distant, moving, low-light) face would stand out: it is softened."""
    import cv2

    from facecamo.donor import sharpness

    donor = blend_donors(faces.images[[3, 6, 9]].numpy(), faces.landmarks[[3, 6, 9]])
    crop, landmarks = faces.images[0].numpy(), faces.landmarks[0]
    mask = replaced_region(landmarks)
    sharp_target = donor_target(crop, landmarks, donor)[0]
    blurred = cv2.GaussianBlur(crop, (0, 0), 2.0)
    soft_target = donor_target(blurred, landmarks, donor)[0]
    assert sharpness(soft_target, mask) <= 1.25 * sharpness(blurred, mask)
    assert sharpness(soft_target, mask) < 0.6 * sharpness(sharp_target, mask)
    # a face at least as sharp as the donor keeps the donor's own detail
    assert sharpness(sharp_target, mask) > 0.5 * sharpness(crop, mask)


def test_blend_donors_averages_faces_moved_onto_the_mean_shape(faces):
    images, landmarks = faces.images.numpy(), faces.landmarks
    blend = blend_donors(images[[0, 3, 6]], landmarks[[0, 3, 6]])
    assert blend.shape == (SIZE, SIZE, 3) and blend.dtype == np.uint8
    moved = np.stack([to_mean_shape(images[i], landmarks[i]).astype(np.float64) for i in (0, 3, 6)])
    assert np.abs(blend - moved.mean(axis=0)).max() <= 0.5 + 1e-9
    np.testing.assert_array_equal(blend_donors(images[[0]], landmarks[[0]]), to_mean_shape(images[0], landmarks[0]))
    with pytest.raises(ValueError, match="as many"):
        blend_donors(images[[0, 3]], landmarks[[0]])
    with pytest.raises(ValueError):
        blend_donors(images[:0], landmarks[:0])


def test_to_mean_shape_and_back_gives_the_face_again(faces):
    for index in range(0, len(faces), 3):
        crop, landmarks = faces.images[index].numpy(), faces.landmarks[index]
        back = warp_image(to_mean_shape(crop, landmarks), warp_map(landmarks, MEAN_SHAPE))
        region = region_mask(landmarks) > 0.5
        error = np.abs(back.astype(np.int16) - crop.astype(np.int16))[region].mean()
        other = faces.images[(index + 3) % len(faces)].numpy()
        other_error = np.abs(other.astype(np.int16) - crop.astype(np.int16))[region].mean()
        assert error < 6, f"face {index}: {error:.1f} grey levels off after the round trip"
        assert other_error > 3 * error  # the round trip is far closer than another person


def donors_and_labels(faces: FaceDataset) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Six faces of identities 0, 1, 2 (two each) and three donors, with the identities they (say they) blend."""
    index = np.concatenate([faces.by_identity[label][:2].numpy() for label in range(3)])
    donors = np.stack([to_mean_shape(faces.images[i].numpy(), faces.landmarks[i]) for i in
                       (faces.by_identity[3][0], faces.by_identity[4][0], faces.by_identity[5][0])])
    donor_labels = np.array([[0, 1], [1, 2], [0, 2]])
    return faces.images[index].numpy(), faces.landmarks[index], faces.labels[index].numpy(), donors, donor_labels


def test_build_targets_never_blends_the_faces_own_identity(faces):
    images, landmarks, labels, donors, donor_labels = donors_and_labels(faces)
    only_allowed = {0: 1, 1: 2, 2: 0}  # the one donor that holds none of the identity
    targets = build_targets(images, landmarks, labels, donors, donor_labels, per_face=3, seed=0, workers=1, progress=False)
    assert targets.shape == (6, 3, SIZE, SIZE, 3) and targets.dtype == np.uint8
    for i in range(len(images)):
        candidates = [donor_target(images[i], landmarks[i], donor)[0] for donor in donors]
        assert not np.array_equal(candidates[0], candidates[1])  # the donors can be told apart
        for r in range(3):
            np.testing.assert_array_equal(targets[i, r], candidates[only_allowed[int(labels[i])]], err_msg=f"face {i}, target {r}")
    # A larger random pool, made by forked workers as training does: same targets as one process, all allowed.
    pool, members = build_donor_pool(faces.images.numpy(), faces.landmarks, faces.labels.numpy(), 6, 2, seed=1)
    assert all(len(set(m)) == 2 for m in members)
    serial = build_targets(images, landmarks, labels, pool, members, per_face=4, seed=2, workers=1, progress=False)
    forked = build_targets(images, landmarks, labels, pool, members, per_face=4, seed=2, workers=2, progress=False)
    np.testing.assert_array_equal(serial, forked)
    for i in range(len(images)):
        allowed = [donor_target(images[i], landmarks[i], pool[d])[0] for d in range(len(pool)) if labels[i] not in members[d]]
        for r in range(4):
            assert any(np.array_equal(serial[i, r], candidate) for candidate in allowed), f"face {i}, target {r}"


class Hung(Exception):
    pass


def test_fewer_identities_than_a_blend_needs_is_a_clear_error(faces):
    images, landmarks, labels, _, _ = donors_and_labels(faces)

    def hung(*_):
        raise Hung("build_donor_pool did not return within 5 s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(5)
    try:
        with pytest.raises(ValueError, match="identit"):  # 3 identities cannot make a blend of 4 different ones
            build_donor_pool(images, landmarks, labels, 2, per_blend=4, seed=0)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_no_allowed_donor_is_a_clear_error(faces):
    images, landmarks, labels, donors, _ = donors_and_labels(faces)
    every_identity = np.array([[0, 1, 2]] * len(donors))
    with pytest.raises(ValueError, match="donor_pool|donors_per_blend"):
        build_targets(images, landmarks, labels, donors, every_identity, per_face=1, seed=0, workers=1, progress=False)


def test_preview_with_fewer_donors_than_preview_faces(prepared):
    dataset = FaceDataset(prepared, "train", progress=False)
    dataset.add_donor_targets(per_face=1, donors=3, per_blend=2, seed=0, progress=False)
    sources, references, targets = preview_faces(dataset, 4)
    assert sources.shape == (4, 3, SIZE, SIZE) and references.shape == (3, 3, SIZE, SIZE)
    assert targets.shape == (4, 3, 3, SIZE, SIZE)


# -- what `make prepare` keeps and how training reads it ---------------------------------------------------------

def read_manifest(folder: Path) -> list[dict]:
    with open(folder / "manifest.csv", newline="") as file:
        return list(csv.DictReader(file))


def test_prepare_keeps_each_rows_landmarks_in_crop_pixels(prepared):
    rows = read_manifest(prepared)
    landmarks = np.load(prepared / "landmarks.npy")
    assert landmarks.dtype == np.float32 and landmarks.shape == (len(rows), 68, 2) and len(rows) == 18
    assert np.all(np.isfinite(landmarks))
    # Where the paper's alignment puts them: eye line, mouth line, horizontal centre (to a hundredth of a pixel)
    np.testing.assert_allclose(landmarks[:, 36:48, 1].mean(axis=1), EYE_LINE_Y, atol=0.05)
    np.testing.assert_allclose(landmarks[:, 48:68, 1].mean(axis=1), MOUTH_LINE_Y, atol=0.05)
    np.testing.assert_allclose((landmarks[:, :, 0].min(axis=1) + landmarks[:, :, 0].max(axis=1)) / 2, CENTRE_X, atol=0.05)
    assert np.abs(landmarks - MEAN_SHAPE).mean() < 5  # and shaped like a face (the mean shape is LFW's)
    # Each row's landmarks are its own crop's: the brightened copy (_0003) of a portrait has landmarks nearest to its
    # original's (_0001) of all the originals, the mirrored copy (_0002) has its nose on the other side.
    by_name = {Path(row["file"]).stem: index for index, row in enumerate(rows)}
    stems = sorted({name[: -len("_0001")] for name in by_name})
    originals = np.stack([landmarks[by_name[f"{stem}_0001"]] for stem in stems])
    for number, stem in enumerate(stems):
        brighter = landmarks[by_name[f"{stem}_0003"]]
        distances = np.linalg.norm(originals - brighter, axis=2).mean(axis=1)
        assert distances.argmin() == number and distances[number] < 1.5, (stem, distances.round(2))
        mirrored = landmarks[by_name[f"{stem}_0002"]]
        nose, mirrored_nose = originals[number, NOSE_TIP, 0] - CENTRE_X, mirrored[NOSE_TIP, 0] - CENTRE_X
        if abs(nose) > 2:
            assert np.sign(mirrored_nose) == -np.sign(nose) and abs(nose + mirrored_nose) < 1.5, stem


def test_dataset_landmarks_follow_the_split_and_are_required_for_donors(identity_folders, tmp_path, capsys):
    from training.prepare import prepare

    out = tmp_path / "split"
    prepare(identity_folders, out, workers=1, test_fraction=0.5, seed=3)
    rows, landmarks = read_manifest(out), np.load(out / "landmarks.npy")
    for split in ("train", "test"):
        dataset = FaceDataset(out, split, progress=False)
        wanted = [index for index, row in enumerate(rows) if row["split"] == split]
        assert 0 < len(wanted) < len(rows)
        assert [str(f.relative_to(out)) for f in dataset.files] == [rows[i]["file"] for i in wanted]
        np.testing.assert_array_equal(dataset.landmarks, landmarks[wanted].astype(np.float64))
    # A folder prepared before landmarks were kept: a clear error for the donor design, the paper design unaffected.
    old = tmp_path / "old"
    shutil.copytree(out, old)
    (old / "landmarks.npy").unlink()
    dataset = FaceDataset(old, "train", progress=False)
    assert dataset.landmarks is None
    with pytest.raises(ValueError, match="make prepare"):
        dataset.add_donor_targets(1, 2, 2, seed=0, progress=False)
    np.save(old / "landmarks.npy", landmarks[:-1])  # stale: fewer rows than the manifest
    assert FaceDataset(old, "train", progress=False).landmarks is None
    donor_run = ["--preset", "tiny", "--data", str(old), "--run-dir", str(tmp_path / "run"), "--steps", "1",
                 "--set", "model.design=donor", "train.donor_pool=2", "model.donors_per_blend=2"]
    assert train_main(donor_run) == 2
    assert "make prepare" in capsys.readouterr().err


def test_sampler_gives_each_source_one_of_its_own_targets_mirrored_with_it(prepared):
    dataset = FaceDataset(prepared, "train", progress=False)
    dataset.add_donor_targets(per_face=2, donors=6, per_blend=2, seed=0, progress=False)
    assert dataset.targets.shape == (18, 2, SIZE, SIZE, 3) and dataset.targets.dtype == torch.uint8
    images, targets = dataset.images.numpy(), dataset.targets.numpy()
    sampler = PairSampler(dataset, batch_size=8, seed=0)
    flips_seen = set()
    for _ in range(4):
        batch = sampler()
        assert batch.target is not None and batch.target.shape == batch.source.shape == (4, 3, SIZE, SIZE)
        assert batch.target.min() >= -1 and batch.target.max() <= 1
        sources, chosen = to_uint8(batch.source).numpy(), to_uint8(batch.target).numpy()
        for i in range(len(sources)):
            matches = [(j, flip) for j in range(len(images)) for flip in (False, True)
                       if np.array_equal(sources[i], images[j][:, ::-1] if flip else images[j])]
            assert matches, "a source that is no dataset image"
            assert any(np.array_equal(chosen[i], targets[j, r][:, ::-1] if flip else targets[j, r])
                       for j, flip in matches for r in range(2)), "a target that is not one of its source's"
            assert all(int(batch.labels[i]) == int(dataset.labels[j]) for j, _ in matches)
            flips_seen.update(flip for _, flip in matches)
    assert flips_seen == {False, True}  # both the plain and the mirrored case were checked


# -- losses ----------------------------------------------------------------------------------------------------

def test_ssim_28_is_the_evaluations_ssim_28(faces):
    images = faces.images.numpy()
    batch = to_model_range(faces.images)
    for a, b in ((0, 3), (0, 1), (6, 15), (4, 4)):
        expected = ssim_coarse(images[a], images[b])
        assert float(ssim_28(batch[a : a + 1], batch[b : b + 1])) == pytest.approx(expected, abs=0.02)
    assert ssim_28(batch, batch).numpy() == pytest.approx(1.0, abs=1e-5)


def test_coarse_difference_pushes_only_while_the_structure_is_the_sources(faces):
    source = to_model_range(faces.images[[0, 3, 6, 9]])
    loss, logs = coarse_difference_loss(source.clone(), source, 0.5)
    assert float(loss) == pytest.approx(0.5, abs=1e-5) and float(logs["ssim28_src"]) == pytest.approx(1.0, abs=1e-5)
    loss, _ = coarse_difference_loss(-source, source, 0.5)  # the negative: structure as different as it gets
    assert float(loss) == 0.0
    # Near the source its gradient leads away from the source's coarse structure.
    generated = (source + 0.05 * torch.randn(source.shape, generator=torch.Generator().manual_seed(0))).requires_grad_(True)
    loss, _ = coarse_difference_loss(generated, source, 0.5)
    loss.backward()
    assert generated.grad.abs().sum() > 0
    step = generated.grad / generated.grad.norm()
    noise = torch.randn(source.shape, generator=torch.Generator().manual_seed(1))
    start = float(ssim_28(generated.detach(), source).mean())
    along_gradient = float(ssim_28((generated - 5.0 * step).detach(), source).mean())
    random_step = float(ssim_28((generated - 5.0 * noise / noise.norm()).detach(), source).mean())
    assert start - along_gradient > 0.002 and start - along_gradient > 3 * abs(start - random_step)


def test_target_coarse_loss_is_zero_only_at_the_target(faces):
    batch = to_model_range(faces.images[[0, 3]])
    loss, logs = target_coarse_loss(batch, batch)
    assert float(loss) == pytest.approx(0.0, abs=1e-5) and set(logs) == {"tgt_coarse", "tgt_l1_28"}
    assert float(target_coarse_loss(batch, batch.flip(0))[0]) > 0.3


def test_augment_for_teacher_degrades_within_range_and_passes_gradients(faces):
    images = to_model_range(faces.images[:6]).requires_grad_(True)
    torch.manual_seed(0)
    augmented = augment_for_teacher(images, torch.Generator().manual_seed(0))
    assert augmented.shape == images.shape and augmented.dtype == images.dtype
    assert augmented.min() >= -1 and augmented.max() <= 1
    change = (augmented - images).abs().mean(dim=(1, 2, 3))
    assert torch.all(change > 0.01) and torch.all(change < 0.5)  # degraded, still the same picture
    (augmented * torch.randn(augmented.shape, generator=torch.Generator().manual_seed(1))).sum().backward()
    assert images.grad is not None and torch.all(images.grad.abs().sum(dim=(1, 2, 3)) > 0)


def test_terms_for_each_design():
    assert terms_for("donor") is DONOR_TERMS and terms_for("paper") is TERMS
    assert {t.name for t in DONOR_TERMS} >= {"target_coarse", "self_reconstruction", "identity", "adversarial"}
    with pytest.raises(ValueError, match="one of donor, paper"):
        terms_for("swap")


# -- a donor run end to end --------------------------------------------------------------------------------------

DONOR_SETTINGS = ["--set", "model.design=donor", "model.identity_dim=16", "model.structure_width=4",
                  "train.donor_targets=1", "train.donor_pool=4", "loss.target_coarse=1", "loss.self_reconstruction=1",
                  # the paper design's own losses: a weight the donor design has no loss for is refused, not ignored
                  "loss.reconstruction=0", "loss.feature_identity=0", "loss.feature_appearance=0", "loss.difference=0"]


def test_donor_design_trains_saves_serves_and_resumes_exactly(prepared, tmp_path):
    common = ["--preset", "tiny", "--data", str(prepared)]
    assert train_main([*common, "--run-dir", str(tmp_path / "split"), "--steps", "2", *DONOR_SETTINGS]) == 0
    path = latest_checkpoint(tmp_path / "split")
    state = load_checkpoint(path)
    assert state["step"] == 2 and state["config"]["model"]["design"] == "donor"
    assert set(state["model"]) == {"identity_encoder", "classifier", "generator", "discriminator"}
    assert set(state["optimizers"]) == {"generator", "discriminator"}  # no appearance encoder, no SGD for it
    assert (tmp_path / "split" / "samples" / "step_00000002.png").is_file()

    net, config, info = load_inference_net(path)
    assert isinstance(net, DonorCamouflageNet) and net.classifier is None and not net.training
    assert config.model.identity_dim == 16 and info["step"] == 2
    source = to_model_range(torch.from_numpy(np.stack([cv2.cvtColor(cv2.imread(str(prepared / row["file"])), cv2.COLOR_BGR2RGB)
                                                       for row in read_manifest(prepared)[:3]])))
    with torch.no_grad():
        assert net.identity_encoder(source).shape == (3, 16, 1, 1)  # a vector: no spatial map reaches G
        face = net.camouflage(source, source.flip(0))
    assert face.shape == (3, 3, SIZE, SIZE) and face.min() >= -1 and face.max() <= 1
    with pytest.raises(RuntimeError, match="inference"):
        net(source, source)

    # Resuming rebuilds the same donor targets: 2 + 1 steps give the weights of 3 steps in one go.
    assert train_main([*common, "--run-dir", str(tmp_path / "split"), "--steps", "3", "--resume", *DONOR_SETTINGS]) == 0
    assert train_main([*common, "--run-dir", str(tmp_path / "whole"), "--steps", "3", *DONOR_SETTINGS]) == 0
    split, whole = (load_checkpoint(tmp_path / run / "checkpoints" / "step_00000003.pt") for run in ("split", "whole"))
    assert split["step"] == 3
    for part in whole["model"]:
        for name, value in whole["model"][part].items():
            assert torch.equal(value, split["model"][part][name]), f"{part}.{name} differs after resume"


def test_identity_probe_says_where_identity_is_lost(tiny_checkpoint, prepared, capsys):
    from tests.conftest import require_shared
    from training.probe_identity import best_threshold_accuracy, main as probe_main

    teacher = require_shared("models/face_embedding/mobilefacenet.onnx")
    assert probe_main(["--data", str(prepared), "--ckpt", str(tiny_checkpoint), "--teacher", str(teacher),
                       "--split", "train", "--faces", "18"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "accuracy" not in line]
    accuracies = {line.split(" | ")[0][2:]: float(line.split(" | ")[1].rstrip(" |")) for line in rows}
    assert len(accuracies) == 5 and all(0.5 <= a <= 1.0 for a in accuracies.values())
    assert accuracies["teacher: original vs original"] > 0.9  # the committed portraits: the teacher tells them apart
    labels = np.array([0, 0, 1, 1])
    perfect = np.where(labels[:, None] == labels[None, :], 0.9, 0.1)
    assert best_threshold_accuracy(perfect, labels) == 1.0
    with pytest.raises(ValueError, match="genuine and one impostor"):
        best_threshold_accuracy(perfect, np.zeros(4, int))
