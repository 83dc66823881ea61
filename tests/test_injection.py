# SPDX-License-Identifier: Apache-2.0
"""The injection design (issue 17): the generator's bound, its losses, the test-time baseline, realism figures and
the evaluation's own FAR operating points."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import require_shared
from training.config import load_config
from training.models import build_network


@pytest.fixture(scope="module")
def inject_net():
    torch.manual_seed(0)
    return build_network(load_config("tiny_inject").model, num_identities=0).eval()


def test_injection_generator_starts_at_the_donor_target_and_stays_within_its_bound(inject_net):
    torch.manual_seed(1)
    source, target = torch.rand(2, 3, 112, 112) * 2 - 1, torch.rand(2, 3, 112, 112) * 1.6 - 0.8
    with torch.no_grad():
        assert torch.equal(inject_net.camouflage(source, target), target)  # zero head: the bare donor target
        for p in inject_net.generator.to_residual.parameters():
            p.normal_(0, 5.0)  # a head gone wild still cannot leave the bound
        out = inject_net.camouflage(source, target)
    bound = float(inject_net.generator.bound().detach())
    assert 0 < bound <= inject_net.generator.max_bound
    assert (out - target).abs().max() <= bound + 1e-6
    assert (out - target).abs().max() > 0.5 * bound  # ... and does use it
    with pytest.raises(ValueError, match="residual_bound"):
        build_network(load_config("tiny_inject", ["model.residual_bound=0"]).model)


def test_visibility_mask_shrinks_the_residual_in_dim_and_flat_skin_and_exports(tmp_path):
    """model.residual_mask=visibility: the bound scaled by the donor target's local light and texture (v4 drew dark
    lines over dim faces with its one bound); the generator it makes still exports with ONNX Runtime parity."""
    from export.onnx_export import check_parity, export_onnx
    from training.models.donor import visibility_mask

    torch.manual_seed(0)
    texture = 0.15 * torch.randn(1, 3, 112, 112)
    lit, flat, dim = (0.2 + texture).clamp(-1, 1), torch.full((1, 3, 112, 112), 0.2), (-0.75 + 0.2 * texture).clamp(-1, 1)
    shares = {name: float(visibility_mask(t).mean()) for name, t in (("lit", lit), ("flat", flat), ("dim", dim))}
    assert shares["lit"] > 0.85 and 0.2 < shares["flat"] < 0.4 and shares["dim"] < 0.3, shares
    net = build_network(load_config("tiny_inject", ["model.residual_mask=visibility"]).model, num_identities=0).eval()
    with torch.no_grad():
        for p in net.generator.to_residual.parameters():
            p.normal_(0, 5.0)
        for target in (lit, dim):
            residual = net.camouflage(target, target) - target
            assert torch.all(residual.abs() <= net.generator.bound() * visibility_mask(target) + 1e-6)
    assert float((net.camouflage(dim, dim) - dim).abs().mean()) < 0.5 * float((net.camouflage(lit, lit) - lit).abs().mean())
    with pytest.raises(ValueError, match="residual_mask"):
        build_network(load_config("tiny_inject", ["model.residual_mask=sharp"]).model)
    parity = check_parity(net, export_onnx(net, tmp_path), torch.cat([lit, dim]).numpy())
    assert all(r.ok for r in parity), [(r.name, r.case, r.max_abs_difference) for r in parity]


def test_injection_losses_read_the_residual_and_refuse_the_adain_generator():
    from training.data import Batch
    from training.losses import DONOR_TERMS, LossInputs, Objective, residual_colour_loss

    torch.manual_seed(0)
    bound = torch.tensor(0.1)
    flat = torch.full((2, 3, 112, 112), 0.1)  # a tint: all low frequency
    texture = 0.1 * torch.sign(torch.randn(2, 3, 112, 112))  # fine texture: almost none
    assert residual_colour_loss(flat, bound)[0] > 0.9 and residual_colour_loss(texture, bound)[0] < 0.05
    config = load_config("tiny_donor", ["loss.residual_colour=1"])
    net = build_network(config.model, num_identities=4)
    batch = Batch(*(torch.zeros(4, 3, 112, 112) for _ in range(3)), torch.arange(4), torch.zeros(4, 3, 112, 112))
    outputs = net(batch.source, batch.target)
    term = next(t for t in DONOR_TERMS if t.name == "residual_colour")
    with pytest.raises(ValueError, match="model.generator=inject"):
        term.compute(LossInputs(outputs, batch, lambda x: [], None, config.loss))
    objective = Objective(load_config("tiny_inject").loss, None, DONOR_TERMS)
    assert {t.name for t in objective.terms} >= {"residual_colour", "residual_size"}
    assert "adversarial" not in {t.name for t in objective.terms}  # no D for the injection G


def test_jpeg_augmentation_passes_the_gradient_straight_through():
    from training.losses import _jpeg_straight_through

    images = (torch.rand(3, 3, 112, 112) * 2 - 1).requires_grad_(True)
    out = _jpeg_straight_through(images, torch.tensor([True, False, True]), torch.Generator().manual_seed(0))
    assert not torch.equal(out[0], images[0]) and torch.equal(out[1], images[1])
    out.sum().backward()
    assert torch.allclose(images.grad, torch.ones_like(images))


def test_test_time_injection_raises_the_teachers_similarity_within_the_bound():
    from training.injection import InjectionSettings, inject_identity

    torch.manual_seed(0)

    class Teacher(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Conv2d(3, 8, 5, stride=4), nn.ReLU(), nn.Flatten(), nn.LazyLinear(16))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return nn.functional.normalize(self.net(x), dim=1)

    teacher = Teacher()
    teacher(torch.zeros(1, 3, 112, 112))
    for p in teacher.parameters():
        p.requires_grad_(False)
    sources, targets = torch.rand(2, 3, 112, 112) * 2 - 1, torch.rand(2, 3, 112, 112) * 2 - 1
    settings = InjectionSettings(steps=15, bound=12.0, copies=1)
    injected = inject_identity(teacher, sources, targets, settings)
    assert (injected - targets).abs().max() <= 2 * 12 / 255 + 1e-6
    before = (teacher(targets) * teacher(sources)).sum(1)
    after = (teacher(injected) * teacher(sources)).sum(1)
    assert bool((after > before + 0.01).all())
    # masked: no pixel moves further than the bound times v5's visibility mask there (a dim half-face: a small share)
    from dataclasses import replace

    from training.models.donor import visibility_mask

    targets[:, :, :, :56] = targets[:, :, :, :56] * 0.1 - 0.9
    masked = inject_identity(teacher, sources, targets, replace(settings, masked=True))
    limit = 2 * 12 / 255 * visibility_mask(targets)
    assert bool(((masked - targets).abs() <= limit + 1e-6).all())
    assert (masked - targets)[:, :, :, :56].abs().max() < 0.5 * (injected - targets).abs().max()


def test_ciede2000_matches_sharmas_published_pairs():
    from training.realism import ciede2000

    pairs = [((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
             ((50.0, 3.1571, -77.2803), (50.0, 0.0, -82.7485), 2.8615),
             ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
             ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
             ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644)]
    first, second, expected = (np.array(column) for column in zip(*pairs))
    np.testing.assert_allclose(ciede2000(first, second), expected, atol=1e-4)


def test_realism_sees_a_lighter_face_and_blotches_but_not_the_same_face(portrait):
    import cv2

    from facecamo.align import FaceAligner
    from training.realism import realism

    face = FaceAligner()(portrait)[0]
    crop, points = face.crop, face.landmarks
    same = realism(crop, crop, points)
    assert same.delta_e == pytest.approx(0, abs=1e-6) and same.lightness == pytest.approx(0, abs=1e-6)
    assert same.chroma_ratio == pytest.approx(1.0)
    lighter = realism(crop, cv2.convertScaleAbs(crop, alpha=1.0, beta=40), points)
    assert lighter.lightness > 8 and lighter.delta_e > 5
    rng = np.random.default_rng(0)
    blotches = cv2.resize(rng.normal(0, 30, (7, 7, 3)), (112, 112), interpolation=cv2.INTER_CUBIC)
    blotched = np.clip(crop + blotches * np.array([1.0, -1.0, 1.0]), 0, 255).astype(np.uint8)
    assert realism(crop, blotched, points).chroma_ratio > 1.6


def test_far_thresholds_come_from_the_impostor_pairs_of_originals():
    from training.eval_scores import accepts_at, far_thresholds
    from training.metrics import Judge

    class Cosine(Judge):
        name, threshold, lower_is_same = "c", 0.5, False

        def score_matrix(self, a, b):
            return a @ b.T

    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(300, 8))
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    identities = np.arange(300) // 2
    found = far_thresholds(Cosine(), embeddings, identities, (1e-2, 1e-3))
    scores = embeddings @ embeddings.T
    impostor = scores[(identities[:, None] != identities[None]) & np.triu(np.ones((300, 300), bool), 1)]
    assert found["impostor_pairs"] == len(impostor)
    for rate in (1e-2, 1e-3):
        assert accepts_at(Cosine(), impostor, found[f"{rate:.0e}"]).mean() <= rate
    assert found["1e-03"] > found["1e-02"]  # a stricter FAR needs a higher similarity


def test_a_far_too_few_impostor_pairs_resolve_is_starred_and_warned_about(capsys):
    """50 images of 17 people give about 1,200 impostor pairs: FAR 1e-3's threshold is then the single highest impostor's
    score, so the TAR at it flatters; the report stars it and says how many images would resolve it."""
    from training.eval_report import tar_cell, unresolved_note
    from training.far import far_resolved, images_needed, impostor_pairs_of, warn_unresolved_fars

    identities = np.repeat(np.arange(17), 3)[:50]
    pairs = impostor_pairs_of(identities)
    assert pairs == 50 * 49 // 2 - (16 * 3 + 1)  # less 16 people's 3 genuine pairs each and one person's single pair
    assert not far_resolved(pairs, "1e-03") and far_resolved(pairs, 1e-2)
    n = images_needed(1e-3)
    enough = impostor_pairs_of(np.repeat(np.arange(n), 3)[:n])
    assert far_resolved(enough, 1e-3) and not far_resolved(impostor_pairs_of(np.repeat(np.arange(n), 3)[: n // 2]), 1e-3)
    assert warn_unresolved_fars(identities) == [1e-3, 1e-4]
    assert f"--images {n}" in capsys.readouterr().err
    assert warn_unresolved_fars(np.arange(2000)) == []
    assert tar_cell({"tar": 0.4271, "resolved": False}) == "0.427*" and tar_cell({"tar": 0.4271, "resolved": True}) == "0.427"
    assert tar_cell({"tar": 0.5}) == "0.500"  # results written before resolution was recorded
    assert "1,170" in unresolved_note(1170)[0] and unresolved_note(200_000) == []


def test_compact_checkpoint_resumes_a_run_on_another_machine(prepared, tmp_path):
    """The repository keeps one compact (bfloat16) checkpoint; a fresh run folder resumes from it at its step."""
    from training.checkpoint import compact_checkpoint, latest_checkpoint, load_checkpoint
    from training.train import main as train_main

    first = tmp_path / "first"
    assert train_main(["--preset", "tiny_inject", "--data", str(prepared), "--run-dir", str(first), "--steps", "2"]) == 0
    full = latest_checkpoint(first)
    small = compact_checkpoint(full, tmp_path / "resume" / "tiny_inject.pt")
    assert small.stat().st_size < 0.7 * full.stat().st_size
    restored, original = load_checkpoint(small), load_checkpoint(full)
    assert restored["step"] == 2
    for name, tensor in original["model"]["generator"].items():
        assert restored["model"]["generator"][name].dtype == tensor.dtype
        torch.testing.assert_close(restored["model"]["generator"][name], tensor, rtol=1e-2, atol=1e-3)
    second = tmp_path / "second"
    assert train_main(["--preset", "tiny_inject", "--data", str(prepared), "--run-dir", str(second), "--steps", "3",
                       "--resume-from", str(small)]) == 0
    assert load_checkpoint(latest_checkpoint(second))["step"] == 3
    # the run's own newer checkpoint wins over the file it started from
    assert train_main(["--preset", "tiny_inject", "--data", str(prepared), "--run-dir", str(second), "--steps", "4",
                       "--resume-from", str(small)]) == 0
    assert load_checkpoint(latest_checkpoint(second))["step"] == 4
    assert train_main(["--preset", "tiny_inject", "--data", str(prepared), "--run-dir", str(tmp_path / "x"),
                       "--resume-from", str(tmp_path / "missing.pt")]) == 2


def test_the_injection_generator_exports_with_todays_tensors_and_matches_onnx_runtime(inject_net, portrait, tmp_path):
    """Served as the generator model with the donor design's tensors; its output declares its fixed sizes (the legacy
    exporter named the height axis "batch")."""
    import onnx

    from facecamo import spec
    from facecamo.align import FaceAligner
    from export.onnx_export import check_parity, export_onnx

    with torch.no_grad():
        for p in inject_net.generator.to_residual.parameters():
            p.normal_(0, 0.5)  # a residual that is not zero, so parity means something
    paths = export_onnx(inject_net, tmp_path)
    output = onnx.load(str(paths[spec.GENERATOR])).graph.output[0]
    dims = [d.dim_value or d.dim_param for d in output.type.tensor_type.shape.dim]
    assert output.name == spec.GENERATED_FACES and dims == ["batch", 3, 112, 112]
    crop = FaceAligner()(portrait)[0].crop
    faces = (np.stack([crop, crop[:, ::-1]]).astype(np.float32) / 127.5 - 1).transpose(0, 3, 1, 2)
    results = check_parity(inject_net, paths, np.ascontiguousarray(faces))
    assert results and all(r.ok for r in results), [(r.name, r.case, r.max_abs_difference) for r in results if not r.ok]


def test_bounded_copy_moves_the_donor_toward_the_source_no_further_than_the_masked_bound():
    """The evaluation's ``copy`` baseline: what a generator handed the aligned source gets without learning anything."""
    from training.injection import bounded_copy
    from training.models.donor import visibility_mask

    torch.manual_seed(0)
    targets = (0.2 + 0.15 * torch.randn(2, 3, 112, 112)).clamp(-1, 1)
    sources = targets.clone()
    sources[:, :, :56] += 0.01  # a difference well inside the bound: copied exactly
    sources[:, :, 56:] -= 0.5  # one far outside it: the target moves by the bound, toward the source
    copied = bounded_copy(sources, targets, bound=12.0)
    limit = 2 * 12 / 255 * visibility_mask(targets)
    assert torch.all((copied - targets).abs() <= limit + 1e-6)
    assert torch.allclose(copied[:, :, :56], sources[:, :, :56].clamp(-1, 1), atol=1e-6)
    moved = (copied - targets)[:, :, 56:]
    assert bool((moved <= 0).all()) and float(moved.mean()) < -0.5 * float(limit[:, :, 56:].mean())


def test_teacher_features_loss_reads_the_teachers_middle_layer_and_pulls_only_the_generated_face():
    from training.losses import teacher_features_loss

    torch.manual_seed(0)
    source = torch.randn(2, 256, 14, 14, requires_grad=True)
    generated = torch.randn(2, 256, 14, 14, requires_grad=True)
    loss, logs = teacher_features_loss(generated, source)
    loss.backward()
    assert 0.5 < float(loss) < 1.5 and generated.grad is not None and source.grad is None
    same, _ = teacher_features_loss(source.detach(), source)
    assert float(same) == pytest.approx(0.0, abs=1e-6) and "feature_cos" in logs


def test_injection_residuals_train_g_and_a_file_for_other_targets_is_refused(prepared, tmp_path):
    """loss.injection_distill reads per-face residuals stored for exactly the trainer's donor targets."""
    from training.config import load_config
    from training.data import FaceDataset, PairSampler
    from training.injection import InjectionSettings
    from training.injection_bank import load_residuals, targets_fingerprint, write_bank
    from training.train import main as train_main

    config = load_config("tiny_inject", [])
    dataset = FaceDataset(prepared, "train", progress=False)
    dataset.add_donor_targets(config.train.donor_targets, config.train.donor_pool, config.model.donors_per_blend,
                              seed=config.train.seed, progress=False)
    faces = np.arange(min(4, len(dataset)))
    residual = np.full((len(faces), 3, 112, 112), 64, np.int8)
    bank = tmp_path / "injected.npz"
    write_bank(bank, list(faces), [residual], 0.094, targets_fingerprint(dataset.targets, faces), InjectionSettings())
    dataset.add_injection_residuals(bank)
    assert bool(dataset.has_injection[faces].all()) and int(dataset.has_injection.sum()) == len(faces)
    batch = PairSampler(dataset, 4, seed=0)()
    assert batch.injected is not None and batch.injected.shape == batch.source.shape
    with_residual = batch.injected_mask.bool()
    assert torch.allclose(batch.injected[with_residual], torch.tensor(64 * 0.094 / 127))
    assert float(batch.injected[~with_residual].abs().sum()) == 0.0
    # train.injected_share: that share of the pairs is drawn from the faces with a residual (here all of them)
    for step in range(3):
        sampler = PairSampler(dataset, 4, seed=step, injected_share=1.0)
        banked_pairs = min(2, len(sampler.banked_labels))  # distinct identities with a banked face
        assert bool(sampler().injected_mask[:banked_pairs].bool().all())
    with pytest.raises(ValueError, match="injected_share"):
        PairSampler(dataset, 4, seed=0, injected_share=1.5)
    # a file made for other targets (another seed) is refused, naming what to do
    other = tmp_path / "other.npz"
    write_bank(other, list(faces), [residual], 0.094, "0" * 64, InjectionSettings())
    with pytest.raises(ValueError, match="other donor targets"):
        load_residuals(other, dataset)
    run = tmp_path / "run"
    assert train_main(["--preset", "tiny_inject", "--data", str(prepared), "--run-dir", str(run), "--steps", "2", "--set",
                       "loss.injection_distill=1", f"loss.injection_residuals={bank}"]) == 0


def test_injection_look_draws_source_donor_release_and_each_injection_side_by_side(identity_folders, tmp_path, capsys):
    """The picture of what the per-face injection costs a face: one row per face, one 112 px column (2x) per kind."""
    import cv2

    from tools.injection_look import main as look_main
    from training.prepare import prepare

    teacher = require_shared("models/face_embedding/mobilefacenet.onnx")
    data = tmp_path / "prepared"
    prepare(identity_folders, data, workers=1, test_fraction=1.0)
    out = tmp_path / "look.jpg"
    assert look_main(["--data", str(data), "--out", str(out), "--teacher", str(teacher), "--steps", "1", "3",
                      "--faces", "2"]) == 0
    picture = cv2.imread(str(out))
    assert picture.shape == (2 * 224, 5 * 224, 3)
    source, donor = picture[:224, :224].astype(int), picture[:224, 224:448].astype(int)
    assert np.abs(source - donor).mean() > 3  # the donor target is another face
    assert look_main(["--data", str(data), "--out", str(out), "--teacher", str(tmp_path / "none.onnx")]) == 2
    assert "pass --teacher" in capsys.readouterr().err
