# SPDX-License-Identifier: Apache-2.0
"""The paper's losses (1)-(7) and the objective that weighs them.

Each loss function returns ``(loss, logs)``: a scalar tensor and named scalar tensors for TensorBoard and the
progress bar. Logs stay detached tensors on the training device: converting them to Python floats each step would
make the CPU wait for the GPU every step; the trainer averages them over its log interval and synchronises once.
Images are float (B, 3, 112, 112) in [-1, 1].

**Adding a loss** is one entry in :data:`TERMS` (a function of the step's :class:`LossInputs`) plus its weight, a
field of :class:`training.config.LossConfig` named like the term; presets and ``--set loss.<name>=...`` then set it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facecamo.design import DONOR, PAPER, design_named
from training.config import LossConfig, field_types
from training.data import Batch
from training.models import GeneratorOutputs
from training.models.donor import DonorOutputs

Logs = dict[str, torch.Tensor]  # name -> detached 0-dim float tensor


def reconstruction_loss(recon_self: torch.Tensor, recon_partner: torch.Tensor, source: torch.Tensor) -> tuple[torch.Tensor, Logs]:
    """(1) L_rec: self-identity reconstruction. G(E_I(x), E_A(x)) and G(E_I(x'), E_A(x)), x' another photo of
    the same person, should both give back x (L1)."""
    loss_self = F.l1_loss(recon_self, source)
    loss_partner = F.l1_loss(recon_partner, source)
    loss = loss_self + loss_partner
    return loss, {"rec": loss.detach(), "rec_self": loss_self.detach(), "rec_partner": loss_partner.detach()}


def feature_identity_loss(id_generated: torch.Tensor, id_source: torch.Tensor) -> tuple[torch.Tensor, Logs]:
    """(2) L_fI: the generated face must carry the source's identity code (L1 against the detached code)."""
    loss = F.l1_loss(id_generated, id_source.detach())
    return loss, {"f_id": loss.detach()}


def feature_appearance_loss(app_generated: torch.Tensor, app_reference: torch.Tensor) -> tuple[torch.Tensor, Logs]:
    """(3) L_fA: the generated face must carry the reference's appearance code (L1 against the detached code)."""
    loss = F.l1_loss(app_generated, app_reference.detach())
    return loss, {"f_app": loss.detach()}


def difference_loss(generated: torch.Tensor, source: torch.Tensor, margin: float) -> tuple[torch.Tensor, Logs]:
    """(4) L_dif: negative pixel loss pushing the camouflaged face away from the source. The paper's
    ``-|G - x|_1`` is unbounded; this hinge stops pushing once the mean distance exceeds ``margin``."""
    distance = (generated - source).abs().flatten(1).mean(dim=1)  # (B,)
    loss = F.relu(margin - distance).mean()
    return loss, {"dif": loss.detach(), "dif_distance": distance.detach().mean()}


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    kernel = torch.exp(-(coords ** 2) / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    return (kernel[:, None] * kernel[None, :])[None, None]  # (1, 1, size, size)


def ssim_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Differentiable SSIM (B,) of two (B, 3, H, W) batches in [-1, 1], per channel and averaged: the formula of
    evaluation's "SSIM to original" (training.metrics.ssim: Gaussian window 11, sigma 1.5, grey levels 0..255)."""
    channels = a.shape[1]
    window = _gaussian_window().to(a).expand(channels, 1, -1, -1)
    pad = window.shape[-1] // 2

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(t, (pad, pad, pad, pad), mode="reflect"), window, groups=channels)

    x, y = (a + 1) * 127.5, (b + 1) * 127.5
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x ** 2
    var_y = blur(y * y) - mu_y ** 2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(dim=1)


def coarse_luminance(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] -> (B, 1, H/2, W/2) luminance in [-1, 1], averaged over 2x2 pixels."""
    luma = torch.tensor([0.299, 0.587, 0.114], dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    return F.avg_pool2d((image * luma).sum(dim=1, keepdim=True), 2)


def structure_difference_loss(generated: torch.Tensor, source: torch.Tensor, max_ssim: float) -> tuple[torch.Tensor, Logs]:
    """Not in the paper: a hinge on the SSIM between the generated face and the source, pushing until it falls below
    ``max_ssim``. L_dif alone is met by recolouring (the pixel distance grows, the face stays the same person to a
    human), and SSIM is blind to a global colour shift. Measured on luminance at half resolution (an 11-pixel window
    there spans 22 source pixels: the scale of eyes, nose and mouth), because at full resolution per channel the
    cheapest way down is chromatic noise, which hides no one."""
    similarity = ssim_per_image(coarse_luminance(generated), coarse_luminance(source))  # (B,)
    loss = F.relu(similarity - max_ssim).mean()
    return loss, {"struct": loss.detach(), "struct_ssim": similarity.detach().mean()}


def identity_loss(logits: list[torch.Tensor], labels: torch.Tensor) -> tuple[torch.Tensor, Logs]:
    """(5) L_id: softmax cross-entropy of the identity classifier on E_I's code, for real and generated faces.

    Args:
        logits: float (B, num_identities) tensors, each to be classified as ``labels`` (int64 (B,)).
    Logs ``id_acc``: the classifier's accuracy on the first of ``logits``.
    """
    losses = [F.cross_entropy(scores, labels) for scores in logits]
    loss = torch.stack(losses).mean()
    accuracy = (logits[0].detach().argmax(dim=1) == labels).float().mean()
    return loss, {"id": loss.detach(), "id_acc": accuracy}


def adversarial_generator_loss(fake_scores: list[torch.Tensor]) -> tuple[torch.Tensor, Logs]:
    """(6, generator side) least-squares GAN: every scale's patch scores on generated faces pushed to 1."""
    loss = torch.stack([((s - 1) ** 2).mean() for s in fake_scores]).sum()
    return loss, {"adv_g": loss.detach()}


def adversarial_discriminator_loss(real_scores: list[torch.Tensor], fake_scores: list[torch.Tensor]) -> tuple[torch.Tensor, Logs]:
    """(6, discriminator side) least-squares GAN: real patches to 1, generated to 0, summed over scales."""
    loss = torch.stack([((r - 1) ** 2).mean() + (f ** 2).mean() for r, f in zip(real_scores, fake_scores)]).sum()
    return loss, {"adv_d": loss.detach()}


def teacher_identity_loss(embed_generated: torch.Tensor, embed_source: torch.Tensor) -> tuple[torch.Tensor, Logs]:
    """Not in the paper: cosine distance between a frozen face-recognition network's embeddings (B, D) of the
    generated face and of the source, so that an independent recogniser still matches them."""
    cosine = (embed_generated * embed_source.detach()).sum(dim=1)
    loss = (1 - cosine).mean()
    return loss, {"teacher": loss.detach(), "teacher_cos": cosine.detach().mean()}


# -- the objective ----------------------------------------------------------------------------------------------

@dataclass
class LossInputs:
    """What a loss term may read in one generator step.

    Attributes:
        outputs: the generator side's outputs for ``batch``.
        batch: the step's images (float (B, 3, 112, 112) in [-1, 1]) and int64 (B,) labels.
        discriminator: D with its parameters frozen for this step (so the generator's loss writes no gradient into
            it); float (N, 3, 112, 112) -> one score map per scale.
        teacher: the frozen face embedder, float (B, 3, 112, 112) -> (B, D) unit vectors; None without one.
        config: the loss weights and parameters.
        teacher_cache: the teacher's embeddings already computed this step (:func:`teacher_of_sources`).
    """

    outputs: GeneratorOutputs | DonorOutputs
    batch: Batch
    discriminator: Callable[[torch.Tensor], list[torch.Tensor]]
    teacher: nn.Module | None
    config: LossConfig
    teacher_cache: dict[str, torch.Tensor] = field(default_factory=dict)  # teacher outputs shared by several terms


@dataclass(frozen=True)
class Term:
    """One weighted term of L_total.

    Attributes:
        name: the :class:`LossConfig` field holding the term's weight (lambda).
        compute: (loss, logs) for one step.
        optional: computed only when its weight is > 0. The paper's terms are not optional: each is the only
            gradient path into some parameters (the classifier's, for L_id), and DistributedDataParallel needs every
            parameter to take part in every step, so at weight 0 they still run and count zero.
        needs_teacher: the term reads ``LossInputs.teacher``; a weight > 0 without a teacher is an error.
    """

    name: str
    compute: Callable[[LossInputs], tuple[torch.Tensor, Logs]]
    optional: bool = False
    needs_teacher: bool = False


def _teacher_term(inputs: LossInputs) -> tuple[torch.Tensor, Logs]:
    return teacher_identity_loss(inputs.teacher(inputs.outputs.generated), teacher_of_sources(inputs))


# Summed in this order (L_total's value depends on the order of float additions, so keep it stable).
TERMS: tuple[Term, ...] = (
    Term("reconstruction", lambda i: reconstruction_loss(i.outputs.recon_self, i.outputs.recon_partner, i.batch.source)),
    Term("feature_identity", lambda i: feature_identity_loss(i.outputs.id_generated, i.outputs.id_source)),
    Term("feature_appearance", lambda i: feature_appearance_loss(i.outputs.app_generated, i.outputs.app_reference)),
    Term("difference", lambda i: difference_loss(i.outputs.generated, i.batch.source, i.config.difference_margin)),
    Term("identity", lambda i: identity_loss([i.outputs.logits_source, i.outputs.logits_partner, i.outputs.logits_generated],
                                             i.batch.labels)),
    Term("structure_difference", lambda i: structure_difference_loss(i.outputs.generated, i.batch.source, i.config.structure_max_ssim),
         optional=True),
    Term("adversarial", lambda i: adversarial_generator_loss(i.discriminator(i.outputs.fake_images()))),
    Term("teacher", _teacher_term, optional=True, needs_teacher=True),
)


# -- the donor design's terms (issue 11) -------------------------------------------------------------------------

def ssim_28(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Differentiable SSIM (B,) of greyscale images area-downsampled to 28x28 (Gaussian window 11, sigma 1.5): the
    evaluation's SSIM-28 (:func:`training.metrics.ssim_coarse`), the scale of face shape and feature layout."""
    return ssim_per_image(_grey(F.adaptive_avg_pool2d(a, 28)), _grey(F.adaptive_avg_pool2d(b, 28)))


def _grey(image: torch.Tensor) -> torch.Tensor:
    luma = torch.tensor([0.299, 0.587, 0.114], dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    return (image * luma).sum(dim=1, keepdim=True)


def target_coarse_loss(generated: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, Logs]:
    """Match the donor target where people read who someone is: L1 between 4x-downsampled images (28x28) plus
    (1 - SSIM) of luminance at half and at quarter size. Fine texture is left to the identity losses."""
    low = F.l1_loss(F.avg_pool2d(generated, 4), F.avg_pool2d(target, 4))
    half = 1 - ssim_per_image(_grey(F.avg_pool2d(generated, 2)), _grey(F.avg_pool2d(target, 2))).mean()
    quarter = 1 - ssim_per_image(_grey(F.avg_pool2d(generated, 4)), _grey(F.avg_pool2d(target, 4))).mean()
    loss = low + half + quarter
    return loss, {"tgt_coarse": loss.detach(), "tgt_l1_28": low.detach()}


def target_pixel_loss(generated: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, Logs]:
    """L1 at full size against the donor target: a weak texture anchor."""
    loss = F.l1_loss(generated, target)
    return loss, {"tgt_l1": loss.detach()}


def coarse_difference_loss(generated: torch.Tensor, source: torch.Tensor, max_ssim: float) -> tuple[torch.Tensor, Logs]:
    """Hinge on SSIM-28 between the camouflaged face and the source: pushes the coarse structure away from the
    source until it falls below ``max_ssim`` (noise cannot lower it at that scale)."""
    similarity = ssim_28(generated, source)
    loss = F.relu(similarity - max_ssim).mean()
    return loss, {"c_dif": loss.detach(), "ssim28_src": similarity.detach().mean()}


def augment_for_teacher(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random degradations, per image, before the teacher reads a generated face: Gaussian blur (sigma 0 to 1.5),
    down- and up-sizing (to 56..112 px), a shift of up to 4 px (the alignment of another recogniser differs),
    brightness/contrast/colour jitter and, for half of the images, JPEG at quality 30 to 90 (its rounding passed
    straight through for the gradient). Identity that survives these lives in the face's shape, not in details only
    one network reads. float (B, 3, 112, 112) in [-1, 1] -> same."""
    batch, device = images.shape[0], images.device

    def draw(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, device=device)

    # Blur: a 5x5 separable Gaussian whose sigma varies per image (sigma 0 leaves the image as it is).
    sigma = draw(batch) * 1.5
    offsets = torch.arange(-2, 3, device=device, dtype=images.dtype)
    kernel = torch.exp(-(offsets[None] ** 2) / (2 * sigma[:, None].clamp(min=1e-3) ** 2))
    kernel = torch.where(sigma[:, None] < 0.05, (offsets[None] == 0).to(images.dtype), kernel)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # (B, 5)
    x = images.reshape(1, batch * 3, *images.shape[2:])
    horizontal = kernel.repeat_interleave(3, dim=0)[:, None, None, :]  # (3B, 1, 1, 5)
    x = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="reflect"), horizontal, groups=batch * 3)
    x = F.conv2d(F.pad(x, (0, 0, 2, 2), mode="reflect"), horizontal.transpose(2, 3), groups=batch * 3)
    x = x.reshape_as(images)
    # Resize: half of the images go down to a random size and back (one size per step: cheap, still varied).
    size = int(56 + 56 * float(torch.rand(1, generator=generator)))
    small = F.interpolate(F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True),
                          size=images.shape[-1], mode="bilinear", align_corners=False)
    x = torch.where(draw(batch, 1, 1, 1) < 0.5, small, x)
    # Shift: one offset per step (cheap), replicated at the border.
    dx, dy = (int(v) for v in torch.randint(-4, 5, (2,), generator=generator))
    if dx or dy:
        padded = F.pad(x, (4, 4, 4, 4), mode="replicate")
        x = padded[:, :, 4 + dy : 4 + dy + images.shape[2], 4 + dx : 4 + dx + images.shape[3]]
    # Colour: brightness, contrast and per-channel gains.
    brightness = (draw(batch, 1, 1, 1) - 0.5) * 0.3
    contrast = 0.8 + draw(batch, 1, 1, 1) * 0.4
    gains = 0.9 + draw(batch, 3, 1, 1) * 0.2
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (((x - mean) * contrast + mean) * gains + brightness).clamp(-1, 1)
    return _jpeg_straight_through(x, draw(batch) < 0.5, generator)


def _jpeg_straight_through(images: torch.Tensor, chosen: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """The ``chosen`` (bool (B,)) images JPEG-compressed at a random quality (30-90, one per step) by OpenCV; the
    difference is added as a constant, so the gradient flows as if no compression happened (straight-through)."""
    if not bool(chosen.any()):
        return images
    quality = int(torch.randint(30, 91, (1,), generator=generator))
    pixels = ((images.detach() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = pixels.copy()
    for n in np.flatnonzero(chosen.cpu().numpy()):
        _, data = cv2.imencode(".jpg", np.ascontiguousarray(pixels[n, :, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])  # RGB -> BGR
        out[n] = cv2.imdecode(data, cv2.IMREAD_COLOR)[:, :, ::-1]
    compressed = torch.from_numpy(out).to(images.device).permute(0, 3, 1, 2).to(images.dtype) / 127.5 - 1
    change = torch.where(chosen.to(images.device).view(-1, 1, 1, 1), compressed - images, torch.zeros_like(images))
    return images + change.detach()


def identity_distill_loss(vectors: torch.Tensor, teacher_embeddings: torch.Tensor) -> tuple[torch.Tensor, Logs]:
    """Identity distilled into E_I: the first E components of each face's identity vector should point where the
    teacher's embedding of that face points (1 - cosine); the other D - E components stay free for whatever else G
    needs from the source.

    Why: trained through G alone, E_I learnt little identity (v2's vectors verified unseen LFW identities at 63%
    balanced accuracy, the teacher at 95%). Asking for the teacher's own vector taught E_I faster than asking only for
    its cosine similarities between faces (relational distillation lowered that accuracy to 58% in the same steps).

    Args:
        vectors: float (N, D, 1, 1) or (N, D) identity vectors, D >= E.
        teacher_embeddings: float (N, E) the teacher's embeddings of the same faces (no gradient flows into them).
    Returns: (loss, logs ``distill`` and ``distill_cos``: the mean cosine to the teacher).
    Raises:
        ValueError: if the identity vector is shorter than the teacher's embedding.
    """
    flat = vectors.flatten(1)
    length = teacher_embeddings.shape[1]
    if flat.shape[1] < length:
        raise ValueError(f"the identity vector has {flat.shape[1]} components, fewer than the teacher's {length}: "
                         f"raise model.identity_dim to at least {length}")
    cosine = (F.normalize(flat[:, :length], dim=1) * F.normalize(teacher_embeddings.detach(), dim=1)).sum(dim=1)
    loss = (1 - cosine).mean()
    return loss, {"distill": loss.detach(), "distill_cos": cosine.detach().mean()}


def teacher_of_sources(inputs: LossInputs) -> torch.Tensor:
    """float (B, E) the teacher's embeddings of the step's sources, computed once per step for every term."""
    if "source" not in inputs.teacher_cache:
        with torch.no_grad():
            inputs.teacher_cache["source"] = inputs.teacher(inputs.batch.source)
    return inputs.teacher_cache["source"]


def _distill_term(inputs: LossInputs) -> tuple[torch.Tensor, Logs]:
    return identity_distill_loss(inputs.outputs.id_source, teacher_of_sources(inputs))


def teacher_features_loss(generated_features: torch.Tensor, source_features: torch.Tensor) -> tuple[torch.Tensor, Logs]:
    """1 - cosine between the teacher's mid-level features of the camouflaged faces and of their sources, each
    float (B, C, h, w) flattened per face (no gradient into the sources'). Matching a recogniser's middle layers
    rather than its last one is how transferable attacks reach recognisers they never saw (issue 17: the residual
    must carry identity to judges other than the teacher)."""
    cosine = F.cosine_similarity(generated_features.flatten(1), source_features.detach().flatten(1), dim=1)
    loss = (1 - cosine).mean()
    return loss, {"teacher_features": loss.detach(), "feature_cos": cosine.detach().mean()}


def _teacher_features_term(inputs: LossInputs) -> tuple[torch.Tensor, Logs]:
    if "source_features" not in inputs.teacher_cache:
        with torch.no_grad():
            inputs.teacher_cache["source_features"] = inputs.teacher.features(inputs.batch.source)
    return teacher_features_loss(inputs.teacher.features(inputs.outputs.generated), inputs.teacher_cache["source_features"])


def _donor_teacher_term(inputs: LossInputs) -> tuple[torch.Tensor, Logs]:
    """The teacher's cosine between the source and ``loss.teacher_copies`` copies of the camouflaged face (each
    degraded independently when ``loss.teacher_augment``), read in one batch and averaged."""
    embed_source = teacher_of_sources(inputs)
    generated = inputs.outputs.generated
    copies = max(1, inputs.config.teacher_copies)
    if inputs.config.teacher_augment:
        generated = torch.cat([augment_for_teacher(generated) for _ in range(copies)])
    elif copies > 1:
        generated = generated.repeat(copies, 1, 1, 1)
    return teacher_identity_loss(inputs.teacher(generated), embed_source.repeat(copies, 1))


def residual_colour_loss(residual: torch.Tensor, bound: torch.Tensor) -> tuple[torch.Tensor, Logs]:
    """The injection residual's low frequencies: mean square of float (B, 3, 112, 112) ``residual`` averaged over
    8x8-pixel cells, relative to ``bound`` squared. What is left may carry identity as fine texture, but cannot
    lighten, darken or tint the face against its scene (v3's faces glowed in dim scenes: issue 17)."""
    low = F.avg_pool2d(residual, 8)
    loss = (low ** 2).mean() / bound.detach().clamp(min=1e-4) ** 2
    return loss, {"res_colour": loss.detach(), "res_abs": residual.detach().abs().mean()}


def residual_size_loss(bound: torch.Tensor, share: torch.Tensor) -> tuple[torch.Tensor, Logs]:
    """The injection G's learned bound (0-dim, model range) as a ``share`` of its maximum (0-dim, differentiable):
    pushes towards the smallest residual that still carries identity."""
    return share, {"res_bound": bound.detach() * 127.5}  # logged in 0..255 grey levels


def _residual_term(compute: Callable[[DonorOutputs], tuple[torch.Tensor, Logs]]) -> Callable[[LossInputs], tuple[torch.Tensor, Logs]]:
    def term(inputs: LossInputs) -> tuple[torch.Tensor, Logs]:
        if inputs.outputs.residual is None:
            raise ValueError("loss.residual_colour and loss.residual_size need the injection generator (model.generator=inject)")
        return compute(inputs.outputs)
    return term


def injection_distill_loss(residual: torch.Tensor, injected: torch.Tensor, mask: torch.Tensor,
                           scale: float) -> tuple[torch.Tensor, Logs]:
    """Mean square of G's residual minus the per-face injection's, over ``scale``^2 (the injection's bound, model
    range), averaged over the faces that have one (``mask`` float (B,) 1/0); residuals float (B, 3, 112, 112).
    The per-face optimiser's residual is a dense target for what G's residual should be (issue 17's distillation)."""
    per_face = ((residual - injected) ** 2).mean(dim=(1, 2, 3)) / scale**2
    count = mask.sum().clamp_min(1.0)
    loss = (per_face * mask).sum() / count
    return loss, {"injection_distill": loss.detach(), "injected_faces": mask.sum().detach()}


def _injection_distill_term(inputs: LossInputs) -> tuple[torch.Tensor, Logs]:
    if inputs.outputs.residual is None or inputs.batch.injected is None:
        raise ValueError("loss.injection_distill needs the injection generator (model.generator=inject) and "
                         "loss.injection_residuals (a file made by python -m training.injection_bank)")
    return injection_distill_loss(inputs.outputs.residual, inputs.batch.injected, inputs.batch.injected_mask,
                                  float(inputs.outputs.bound.detach() / inputs.outputs.bound_share.detach()))


DONOR_TERMS: tuple[Term, ...] = (
    Term("target_coarse", lambda i: target_coarse_loss(i.outputs.generated, i.batch.target), optional=True),
    Term("target_pixel", lambda i: target_pixel_loss(i.outputs.generated, i.batch.target), optional=True),
    # Optional from here: the injection G needs neither a reconstruction nor the softmax classifier (a network
    # trained with either at 0 is built without the classifier: training.train.needs_classifier).
    Term("self_reconstruction", lambda i: _self_reconstruction(i.outputs.recon_self, i.batch.source), optional=True),
    Term("identity", lambda i: identity_loss([i.outputs.logits_source, i.outputs.logits_generated], i.batch.labels),
         optional=True),
    Term("coarse_difference", lambda i: coarse_difference_loss(i.outputs.generated, i.batch.source, i.config.coarse_max_ssim),
         optional=True),
    Term("adversarial", lambda i: adversarial_generator_loss(i.discriminator(i.outputs.fake_images())), optional=True),
    Term("teacher", _donor_teacher_term, optional=True, needs_teacher=True),
    Term("identity_distill", _distill_term, optional=True, needs_teacher=True),
    Term("teacher_features", _teacher_features_term, optional=True, needs_teacher=True),
    Term("residual_colour", _residual_term(lambda o: residual_colour_loss(o.residual, o.bound)), optional=True),
    Term("residual_size", _residual_term(lambda o: residual_size_loss(o.bound, o.bound_share)), optional=True),
    Term("injection_distill", _injection_distill_term, optional=True),
)


def _self_reconstruction(recon_self: torch.Tensor, source: torch.Tensor) -> tuple[torch.Tensor, Logs]:
    loss = F.l1_loss(recon_self, source)
    return loss, {"rec": loss.detach()}


TERMS_BY_DESIGN: dict[str, tuple[Term, ...]] = {PAPER.name: TERMS, DONOR.name: DONOR_TERMS}
"""Each design's loss terms: a new design adds its own here (facecamo.design lists the designs)."""


def terms_for(design: str) -> tuple[Term, ...]:
    """The loss terms of a model design (:data:`TERMS_BY_DESIGN`). Raises ValueError for a name no design has."""
    return TERMS_BY_DESIGN[design_named(design).name]


class Objective:
    """(7) L_total = l1 L_rec + l2 L_fI + l3 L_fA + l4 L_dif + l5 L_id + l6 L_adv (+ structure, + teacher) for the
    generator side, and the weighted least-squares GAN loss for the discriminator.

    Args:
        config: the weights (one :class:`LossConfig` field per term) and the terms' parameters.
        teacher: the frozen face embedder, needed when ``config.teacher > 0``.
        terms: the terms to weigh (default :data:`TERMS`).
    Raises:
        ValueError: if a term's weight is missing from ``config`` or a teacher term is on without a teacher.
    """

    def __init__(self, config: LossConfig, teacher: nn.Module | None = None, terms: tuple[Term, ...] = TERMS) -> None:
        weights = {name for name, kind in field_types(type(config)).items() if kind is float}
        missing = [t.name for t in terms if t.name not in weights]
        if missing:
            raise ValueError(f"loss terms {missing} have no weight: add a float field of that name to LossConfig")
        self.config, self.teacher = config, teacher
        other_designs = {t.name for t in (*TERMS, *DONOR_TERMS)} - {t.name for t in terms}
        ignored = sorted(name for name in other_designs if getattr(config, name, 0.0) > 0)
        if ignored:  # a weight the design has no term for would be silently ignored
            raise ValueError(f"{', '.join(f'loss.{n}' for n in ignored)} > 0 but this model design has no such loss; "
                             "set them to 0 (see the design's preset)")
        self.terms = [t for t in terms if not t.optional or getattr(config, t.name) > 0]
        for term in self.terms:
            if term.needs_teacher and teacher is None:
                raise ValueError(f"loss.{term.name} = {getattr(config, term.name)} needs a teacher network; "
                                 f"set loss.teacher_path, or loss.{term.name}=0")

    def generator(self, outputs: GeneratorOutputs, batch: Batch,
                  discriminator: Callable[[torch.Tensor], list[torch.Tensor]]) -> tuple[torch.Tensor, Logs]:
        """L_total for one step: (scalar loss, logs of every term plus ``total``). ``discriminator`` must have its
        parameters frozen (``requires_grad_(False)``) while this runs."""
        inputs = LossInputs(outputs, batch, discriminator, self.teacher, self.config)
        total: torch.Tensor | float = 0.0
        logs: Logs = {}
        for term in self.terms:
            value, term_logs = term.compute(inputs)
            total = total + getattr(self.config, term.name) * value
            logs.update(term_logs)
        logs["total"] = total.detach()
        return total, logs

    def discriminator(self, real_scores: list[torch.Tensor], fake_scores: list[torch.Tensor]) -> tuple[torch.Tensor, Logs]:
        """l6 times D's least-squares loss (real patches to 1, generated to 0); logs the unweighted ``adv_d``."""
        loss, logs = adversarial_discriminator_loss(real_scores, fake_scores)
        return self.config.adversarial * loss, logs
