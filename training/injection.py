# SPDX-License-Identifier: Apache-2.0
"""Test-time identity injection: the baseline the injection generator must beat (issue 17).

For each face, a residual of at most ``bound`` per channel is optimised on the donor target by Adam so that the
frozen teacher reads the source's identity in it, on the clean face and on degraded copies
(:func:`training.losses.augment_for_teacher`: blur, resize, shift, colour, JPEG). About a second a face on two CPU
cores at 20 steps: far too slow to serve, and the upper reference for what a feed-forward network that amortises
it (:class:`training.models.donor.InjectionGenerator`) can reach against one teacher.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from training.losses import augment_for_teacher
from training.models.donor import visibility_mask


@dataclass(frozen=True)
class InjectionSettings:
    """steps: Adam steps per face; bound: the largest |residual| per channel, in 0..255 grey levels; copies: degraded
    copies read beside the clean face at each step; lr: Adam's step on the residual's pre-tanh parameter; masked: the
    bound scaled per pixel by :func:`training.models.donor.visibility_mask` of the target, the limit v5's generator
    works within (unmasked, the injection may put its full bound on flat and dim skin where v5's residual may not)."""

    steps: int = 20
    bound: float = 12.0
    copies: int = 3
    lr: float = 0.1
    masked: bool = False


def inject_identity(teacher: torch.nn.Module, sources: torch.Tensor, targets: torch.Tensor,
                    settings: InjectionSettings = InjectionSettings(), seed: int = 0) -> torch.Tensor:
    """Donor targets with the sources' identity injected for the teacher.

    Args:
        teacher: frozen face embedder, float (N, 3, 112, 112) in [-1, 1] -> (N, E) unit vectors.
        sources: float (B, 3, 112, 112) in [-1, 1], the aligned originals (whose identity is wanted).
        targets: float (B, 3, 112, 112) in [-1, 1], their donor targets.
    Returns: float (B, 3, 112, 112) in [-1, 1]: ``targets`` plus residuals within ``settings.bound``.
    """
    generator = torch.Generator().manual_seed(seed)
    bound = 2.0 * settings.bound / 255.0  # model range
    if settings.masked:
        bound = bound * visibility_mask(targets)  # (B, 1, 112, 112)
    with torch.no_grad():
        wanted = teacher(sources)
    logits = torch.zeros_like(targets, requires_grad=True)
    optimiser = torch.optim.Adam([logits], lr=settings.lr)
    for _ in range(settings.steps):
        face = (targets + bound * torch.tanh(logits)).clamp(-1, 1)
        views = torch.cat([face] + [augment_for_teacher(face, generator) for _ in range(settings.copies)])
        cosine = (teacher(views) * wanted.repeat(settings.copies + 1, 1)).sum(dim=1)
        loss = (1 - cosine).mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        return (targets + bound * torch.tanh(logits)).clamp(-1, 1)


def bounded_copy(sources: torch.Tensor, targets: torch.Tensor, bound: float = 12.0) -> torch.Tensor:
    """The donor target moved toward the source by at most the release's residual bound: no network, no teacher.

    ``target + clamp(source - target, -b, b)`` with ``b`` = ``bound`` grey levels times
    :func:`training.models.donor.visibility_mask` of the target, the same per-pixel limit v5's generator works within.
    It is what a generator handed the aligned source could do without learning anything, so a learned residual that
    does not beat it has learned nothing a copy does not give (issue 17's "aligned source" question).

    Args: sources, targets: float (B, 3, 112, 112) in [-1, 1]. Returns: float (B, 3, 112, 112) in [-1, 1].
    """
    limit = (2.0 * bound / 255.0) * visibility_mask(targets)
    return (targets + torch.maximum(torch.minimum(sources - targets, limit), -limit)).clamp(-1, 1)
