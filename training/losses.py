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
    }
    loss = sum(weight_of[name] * value for name, value in terms.items())
    return loss, {"total": float(loss.item())}
