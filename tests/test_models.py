# SPDX-License-Identifier: Apache-2.0
"""Every network's shapes, the paper preset's code sizes, and that every trainable parameter learns."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tests.conftest import require_shared
from training import losses
from training.config import LossConfig, load_config
from training.data import Batch
from training.metrics import ssim
from training.models import CamouflageNet, GeneratorOutputs, build_discriminator
from training.models.blocks import adain


@pytest.fixture(scope="module")
def tiny():
    return load_config("tiny")


def images(batch: int) -> torch.Tensor:
    return torch.rand(batch, 3, 112, 112) * 2 - 1


def test_tiny_shapes(tiny):
    torch.manual_seed(0)
    net = CamouflageNet(tiny.model, num_identities=5)
    x = images(3)
    identity = net.identity_encoder(x)
    appearance = net.appearance_encoder(x)
    assert identity.shape == (3, 4 * tiny.model.identity_width, 28, 28)
    assert appearance.shape == (3, net.appearance_encoder.out_channels, 4, 1)
    face = net.generator(identity, appearance)
    assert face.shape == (3, 3, 112, 112) and face.min() >= -1 and face.max() <= 1
    assert net.classifier(identity).shape == (3, 5)
    scores = build_discriminator(tiny.model)(x)
    stride = 2 ** tiny.model.discriminator_layers
    assert [s.shape[-1] for s in scores] == [112 // stride, 56 // stride, 28 // stride]  # 112, 56 and 28 px inputs


def test_paper_preset_sizes():
    paper = load_config("paper")
    net = CamouflageNet(paper.model, num_identities=10).eval()
    with torch.no_grad():
        x = images(1)
        assert net.appearance_encoder(x).shape == (1, 2048, 4, 1)  # ResNet-50 -> 2048x4x1, as in the paper
        assert net.identity_encoder(x).shape == (1, 128, 28, 28)
        assert net.camouflage(x, x).shape == (1, 3, 112, 112)
    assert len(build_discriminator(paper.model).scales) == 3


def test_adain_is_instance_norm_with_appearance_scale_and_shift():
    x = torch.randn(2, 4, 5, 5)
    zero = torch.zeros(2, 4)
    normed = adain(x, zero, zero)
    assert torch.allclose(normed.mean(dim=(2, 3)), torch.zeros(2, 4), atol=1e-5)
    shifted = adain(x, torch.ones(2, 4), torch.full((2, 4), 3.0))
    assert torch.allclose(shifted.mean(dim=(2, 3)), torch.full((2, 4), 3.0), atol=1e-4)


def test_every_trainable_parameter_receives_a_gradient(tiny):
    torch.manual_seed(0)
    net = CamouflageNet(tiny.model, num_identities=4)
    discriminator = build_discriminator(tiny.model)
    batch = Batch(images(4), images(4), images(4), torch.tensor([0, 1, 2, 3]))
    out = net(batch.source, batch.partner, batch.reference)
    assert isinstance(out, GeneratorOutputs) and out.fake_images().shape == (8, 3, 112, 112)
    config = dataclasses.replace(tiny.loss, difference_margin=10.0, structure_difference=1.0, structure_max_ssim=0.0)
    objective = losses.Objective(config)
    discriminator.requires_grad_(False)
    total, logs = objective.generator(out, batch, discriminator)
    discriminator.requires_grad_(True)
    total.backward()
    assert {"rec", "f_id", "f_app", "dif", "id", "id_acc", "struct", "adv_g", "total"} <= set(logs)
    assert "teacher" not in logs  # weight 0: the optional term is not computed
    assert all(v.dim() == 0 and not v.requires_grad for v in logs.values())  # detached, synchronised only when logged
    missing = [name for name, p in net.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert not missing, f"no gradient from L_total for: {missing}"
    assert all(p.grad is None for p in discriminator.parameters()), "the generator step wrote gradients into D"
    d_loss, d_logs = objective.discriminator(discriminator(batch.source), discriminator(out.generated.detach()))
    d_loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in discriminator.parameters())
    assert logs["total"].item() == pytest.approx(total.item()) and "adv_d" in d_logs


@dataclasses.dataclass
class ExtendedLossConfig(LossConfig):
    brightness: float = 0.5


def test_objective_weighs_each_term_and_takes_a_new_term_in_one_place(tiny):
    torch.manual_seed(0)
    net = CamouflageNet(tiny.model, num_identities=4)
    discriminator = build_discriminator(tiny.model).requires_grad_(False)
    batch = Batch(images(4), images(4), images(4), torch.tensor([0, 1, 2, 3]))
    with torch.no_grad():
        out = net(batch.source, batch.partner, batch.reference)
        total, logs = losses.Objective(tiny.loss).generator(out, batch, discriminator)
        config = tiny.loss
        expected = (config.reconstruction * logs["rec"] + config.feature_identity * logs["f_id"]
                    + config.feature_appearance * logs["f_app"] + config.difference * logs["dif"]
                    + config.identity * logs["id"] + config.adversarial * logs["adv_g"])
        assert total.item() == pytest.approx(expected.item(), rel=1e-6)
        # a new loss: one Term, named after its weight in the loss config (here a config with one more field)
        extended = ExtendedLossConfig(**dataclasses.asdict(config))
        extra = losses.Term("brightness", lambda i: (i.outputs.generated.mean().abs(), {"bright": i.outputs.generated.mean().abs()}))
        with_extra, extra_logs = losses.Objective(extended, terms=(*losses.TERMS, extra)).generator(out, batch, discriminator)
        assert with_extra.item() == pytest.approx(total.item() + 0.5 * extra_logs["bright"].item(), rel=1e-6)
    with pytest.raises(ValueError, match="no weight.*LossConfig"):
        losses.Objective(config, terms=(losses.Term("sharpness", lambda i: (torch.zeros(()), {})),))
    with pytest.raises(ValueError, match="needs a teacher"):
        losses.Objective(dataclasses.replace(config, teacher=1.0), teacher=None)
    with pytest.raises(ValueError, match="loss.identity_distill > 0 but this model design has no such loss"):
        losses.Objective(dataclasses.replace(config, identity_distill=1.0), teacher=None)  # a donor-design loss


def test_losses_on_known_cases():
    x = torch.zeros(2, 3, 4, 4)
    assert losses.difference_loss(x + 1.0, x, margin=0.3)[0].item() == 0.0  # far enough: no push
    assert losses.difference_loss(x, x, margin=0.3)[0].item() == pytest.approx(0.3)
    assert losses.reconstruction_loss(x, x, x)[0].item() == 0.0
    unit = torch.nn.functional.normalize(torch.randn(3, 8), dim=1)
    assert losses.teacher_identity_loss(unit, unit)[0].item() == pytest.approx(0.0, abs=1e-6)
    assert losses.adversarial_discriminator_loss([torch.ones(2, 1)], [torch.zeros(2, 1)])[0].item() == 0.0


def test_identity_vector_from_the_mean_or_from_every_position():
    from training.models.donor import IdentityVectorEncoder

    faces = torch.rand(2, 3, 112, 112) * 2 - 1
    for pool, inputs in (("mean", 32), ("flatten", 32 * 49)):
        encoder = IdentityVectorEncoder(width=4, res_blocks=1, dim=16, pool=pool)
        assert encoder(faces).shape == (2, 16, 1, 1) and encoder.project.in_features == inputs
    with pytest.raises(ValueError, match="identity_pool"):
        IdentityVectorEncoder(width=4, res_blocks=1, dim=16, pool="max")


def test_identity_distillation_asks_the_vectors_first_components_for_the_teachers_embedding():
    torch.manual_seed(0)
    teacher = torch.nn.functional.normalize(torch.randn(8, 16), dim=1)
    free = torch.randn(8, 4)  # the components after the teacher's length are left to G
    matching = torch.cat([3.0 * teacher, free], dim=1)[:, :, None, None]
    loss, logs = losses.identity_distill_loss(matching, teacher)
    assert loss.item() == pytest.approx(0.0, abs=1e-6) and logs["distill_cos"].item() == pytest.approx(1.0)
    vectors = torch.randn(8, 20, 1, 1, requires_grad=True)
    loss, logs = losses.identity_distill_loss(vectors, teacher)
    assert loss.item() > 0.5 and set(logs) == {"distill", "distill_cos"}
    loss.backward()
    assert vectors.grad[:, :16].abs().sum() > 0 and vectors.grad[:, 16:].abs().sum() == 0
    with pytest.raises(ValueError, match="identity_dim"):
        losses.identity_distill_loss(torch.randn(8, 12), teacher)


def test_structure_difference_uses_the_evaluation_ssim():
    torch.manual_seed(0)
    a = torch.rand(2, 3, 112, 112) * 2 - 1
    b = (a + 0.3 * torch.randn_like(a)).clamp(-1, 1)
    to_uint8 = lambda t: ((t.permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)  # noqa: E731
    differentiable = losses.ssim_per_image(a, b)
    for i in range(2):  # the number training pushes on is the number the report prints
        assert differentiable[i].item() == pytest.approx(ssim(to_uint8(a[i]), to_uint8(b[i])), abs=2e-3)

    shading = torch.nn.functional.interpolate(torch.rand(1, 1, 14, 14), size=112, mode="bilinear")  # smooth, [0, 1]
    tint = lambda gains, offsets: (shading * torch.tensor(gains).view(1, 3, 1, 1)  # noqa: E731
                                   + torch.tensor(offsets).view(1, 3, 1, 1)) * 2 - 1
    face = tint([0.8, 0.6, 0.5], [0.1, 0.1, 0.1])
    loss, logs = losses.structure_difference_loss(face, face, max_ssim=0.6)
    assert loss.item() == pytest.approx(0.4, abs=1e-4) and logs["struct_ssim"].item() == pytest.approx(1.0, abs=1e-4)
    assert losses.structure_difference_loss(-face, face, max_ssim=0.6)[0].item() == 0.0  # already different: no push
    # recolouring leaves structure alone: the term still pushes, unlike L_dif
    recoloured = tint([0.5, 0.7, 0.8], [0.2, 0.1, 0.05])
    assert losses.structure_difference_loss(recoloured, face, max_ssim=0.6)[0].item() > 0.1
    # fine noise that leaves coarse structure alone lowers full-resolution SSIM far more than the term's
    noisy = (face + 0.15 * torch.randn_like(face)).clamp(-1, 1)
    full = losses.ssim_per_image(noisy, face).item()
    coarse = losses.structure_difference_loss(noisy, face, max_ssim=0.0)[1]["struct_ssim"].item()
    assert coarse > full + 0.2, (coarse, full)


def test_onnx_face_embedder_matches_onnxruntime():
    import numpy as np
    import onnxruntime

    from training.models.face_embedder import OnnxFaceEmbedder

    path = require_shared("models/face_embedding/mobilefacenet.onnx")
    embedder = OnnxFaceEmbedder(path)
    embedder.theta.copy_(torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]))  # identity warp: compare the network alone
    x = images(1)
    ours = embedder(x).numpy()
    theirs = onnxruntime.InferenceSession(str(path)).run(None, {"input": (x * 127.5 / 128).numpy()})[0]
    theirs = theirs / np.linalg.norm(theirs, axis=1, keepdims=True)
    assert np.abs(ours - theirs).max() < 1e-4
    x.requires_grad_(True)
    embedder(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # gradients flow to the generator
