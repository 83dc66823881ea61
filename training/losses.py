"""The paper's losses (1)-(7), each a function returning ``(loss, logs)``.

Images are float (B, 3, 112, 112) in [-1, 1]; ``logs`` maps names to Python floats for TensorBoard and the bar.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from training.config import LossConfig

Logs = dict[str, float]


def reconstruction_loss(recon_self: torch.Tensor, recon_partner: torch.Tensor, source: torch.Tensor) -> tuple[torch.Tensor, Logs]:
    """(1) L_rec: self-identity reconstruction. G(E_I(x), E_A(x)) and G(E_I(x'), E_A(x)), x' another photo of
    the same person, should both give back x (L1)."""
    loss_self = F.l1_loss(recon_self, source)
    loss_partner = F.l1_loss(recon_partner, source)
    loss = loss_self + loss_partner
    return loss, {"rec": loss.item(), "rec_self": loss_self.item(), "rec_partner": loss_partner.item()}


def feature_identity_loss(id_generated: torch.Tensor, id_source: torch.Tensor) -> tuple[torch.Tensor, Logs]:
    """(2) L_fI: the generated face must carry the source's identity code (L1 against the detached code)."""
    loss = F.l1_loss(id_generated, id_source.detach())
    return loss, {"f_id": loss.item()}


def feature_appearance_loss(app_generated: torch.Tensor, app_reference: torch.Tensor) -> tuple[torch.Tensor, Logs]:
    """(3) L_fA: the generated face must carry the reference's appearance code (L1 against the detached code)."""
    loss = F.l1_loss(app_generated, app_reference.detach())
    return loss, {"f_app": loss.item()}


def difference_loss(generated: torch.Tensor, source: torch.Tensor, margin: float) -> tuple[torch.Tensor, Logs]:
    """(4) L_dif: negative pixel loss pushing the camouflaged face away from the source. The paper's
    ``-|G - x|_1`` is unbounded; this hinge stops pushing once the mean distance exceeds ``margin``."""
    distance = (generated - source).abs().flatten(1).mean(dim=1)  # (B,)
    loss = F.relu(margin - distance).mean()
    return loss, {"dif": loss.item(), "dif_distance": distance.mean().item()}


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
    return loss, {"struct": loss.item(), "struct_ssim": similarity.mean().item()}


def identity_loss(logits: list[torch.Tensor], labels: torch.Tensor) -> tuple[torch.Tensor, Logs]:
    """(5) L_id: softmax cross-entropy of the identity classifier on E_I's code, for real and generated faces.

    Args:
        logits: float (B, num_identities) tensors, each to be classified as ``labels`` (int64 (B,)).
    """
    losses = [F.cross_entropy(l, labels) for l in logits]
    loss = torch.stack(losses).mean()
    accuracy = (logits[0].argmax(dim=1) == labels).float().mean().item()
    return loss, {"id": loss.item(), "id_acc": accuracy}


def adversarial_generator_loss(fake_scores: list[torch.Tensor]) -> tuple[torch.Tensor, Logs]:
    """(6, generator side) least-squares GAN: every scale's patch scores on generated faces pushed to 1."""
    loss = torch.stack([((s - 1) ** 2).mean() for s in fake_scores]).sum()
    return loss, {"adv_g": loss.item()}


def adversarial_discriminator_loss(real_scores: list[torch.Tensor], fake_scores: list[torch.Tensor]) -> tuple[torch.Tensor, Logs]:
    """(6, discriminator side) least-squares GAN: real patches to 1, generated to 0, summed over scales."""
    loss = torch.stack([((r - 1) ** 2).mean() + (f ** 2).mean() for r, f in zip(real_scores, fake_scores)]).sum()
    return loss, {"adv_d": loss.item()}


def teacher_identity_loss(embed_generated: torch.Tensor, embed_source: torch.Tensor) -> tuple[torch.Tensor, Logs]:
    """Not in the paper: cosine distance between a frozen face-recognition network's embeddings (B, D) of the
    generated face and of the source, so that an independent recogniser still matches them."""
    cosine = (embed_generated * embed_source.detach()).sum(dim=1)
    loss = (1 - cosine).mean()
    return loss, {"teacher": loss.item(), "teacher_cos": cosine.mean().item()}


def total_loss(terms: dict[str, torch.Tensor], weights: LossConfig) -> tuple[torch.Tensor, Logs]:
    """(7) L_total = l1 L_rec + l2 L_fI + l3 L_fA + l4 L_dif + l5 L_id + l6 L_adv (+ teacher)."""
    weight_of = {
        "rec": weights.reconstruction, "f_id": weights.feature_identity, "f_app": weights.feature_appearance,
        "dif": weights.difference, "id": weights.identity, "adv_g": weights.adversarial, "teacher": weights.teacher,
        "struct": weights.structure_difference,
    }
    loss = sum(weight_of[name] * value for name, value in terms.items())
    return loss, {"total": float(loss.item())}
