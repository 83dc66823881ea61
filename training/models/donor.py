# SPDX-License-Identifier: Apache-2.0
"""The donor-guided design (``model.design: donor``, issue 11): identity as a vector, structure from a donor.

The paper's G decodes E_I's 28x28 spatial code, which hands it the source's layout: trained variants only recoloured
and added texture noise (SSIM at 28x28 stayed at 0.85). Here no spatial map of the source reaches G:

- E_I (:class:`IdentityVectorEncoder`) pools its features into one vector, float (B, D, 1, 1);
- G (:class:`DonorGenerator`) encodes the *donor target* t (another face warped onto the source's landmarks and
  blended into the source's crop: :func:`facecamo.donor.donor_target`) and decodes it through AdaIN residual blocks
  whose parameters come from the identity vector, so the face keeps t's structure and carries x's identity.

At test time the frame pipeline builds t with the same numpy function from a donor bank entry; the served generator's
inputs are (IDENTITY_CODE (D, 1, 1), APPEARANCE (3, 112, 112) the target in [-1, 1]).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from facecamo.design import DONOR
from training.config import ModelConfig
from training.models.blocks import (
    AdaINResidualBlock,
    ResidualBlock,
    adain_mlp,
    conv_unit,
)


class IdentityVectorEncoder(nn.Module):
    """E_I of the donor design: float (B, 3, 112, 112) in [-1, 1] -> float (B, D, 1, 1), one vector per face.

    ``pool`` says how the last features, (B, 8w, 7, 7), become that vector:

    - ``"mean"``: their mean over positions, projected (v2): where a feature is cannot reach G, only what it is.
    - ``"flatten"``: all 49 positions, projected together (as face recognisers do: MobileFaceNet weighs each position
      with a depthwise 7x7 filter). Identity lives largely in the layout of features, which a mean over positions
      throws away; and the last unit ends in InstanceNorm and ReLU, so each channel's mean over positions depends only
      on the shape of its distribution, nearly the same for every face. Asked for the teacher's embedding, the same
      pretrained layers reached 0.72 balanced verification accuracy on unseen LFW faces in 150 steps with
      ``flatten`` against 0.68 in 300 with ``mean``. G still gets D numbers, not a spatial map, but those numbers can
      now carry the source's coarse layout; what keeps G from reproducing it is the donor target it must match at
      coarse scale (and ``loss.coarse_difference`` where it is on), so watch SSIM-28 in ``make eval``.
    """

    def __init__(self, width: int = 32, res_blocks: int = 4, dim: int = 256, pool: str = "mean") -> None:
        super().__init__()
        if pool not in ("mean", "flatten"):
            raise ValueError(f"model.identity_pool must be mean or flatten, got {pool!r}")
        self.out_channels, self.pool = dim, pool
        self.net = nn.Sequential(
            conv_unit(3, width, 7),  # (B, w, 112, 112)
            conv_unit(width, 2 * width, 4, stride=2),  # (B, 2w, 56, 56)
            conv_unit(2 * width, 4 * width, 4, stride=2),  # (B, 4w, 28, 28)
            *[ResidualBlock(4 * width) for _ in range(res_blocks)],
            conv_unit(4 * width, 8 * width, 4, stride=2),  # (B, 8w, 14, 14)
            conv_unit(8 * width, 8 * width, 4, stride=2),  # (B, 8w, 7, 7)
        )
        self.project = nn.Linear(8 * width * (49 if pool == "flatten" else 1), dim)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        features = self.net(image)  # (B, 8w, 7, 7)
        pooled = features.flatten(1) if self.pool == "flatten" else features.mean(dim=(2, 3))  # (B, 8w*49) or (B, 8w)
        return self.project(pooled)[:, :, None, None]


class DonorGenerator(nn.Module):
    """G of the donor design.

    Inputs:
        identity: float (B, D, 1, 1) from :class:`IdentityVectorEncoder`.
        target: float (B, 3, 112, 112) in [-1, 1], the donor target.
    Output: float (B, 3, 112, 112) in [-1, 1].
    """

    def __init__(self, identity_dim: int, width: int = 32, res_blocks: int = 4, mlp_dim: int = 256) -> None:
        super().__init__()
        c = 4 * width
        self.encode_112 = conv_unit(3, width, 7)  # (B, w, 112, 112)
        self.encode_56 = conv_unit(width, 2 * width, 4, stride=2)  # (B, 2w, 56, 56)
        self.encode_28 = nn.Sequential(conv_unit(2 * width, c, 4, stride=2), conv_unit(c, c, 3))  # (B, 4w, 28, 28)
        self.blocks = nn.ModuleList(AdaINResidualBlock(c) for _ in range(res_blocks))
        num_params = sum(block.num_adain_params for block in self.blocks)
        self.mlp = adain_mlp(identity_dim, mlp_dim, num_params)
        # The 56x56 skip keeps the target's mid-scale layout sharp; the identity enters through the blocks above it.
        self.decode_56 = conv_unit(c + 2 * width, 2 * width, 5, norm="ln")
        self.decode_112 = conv_unit(2 * width, width, 5, norm="ln")
        self.to_rgb = nn.Sequential(conv_unit(width, 3, 7, norm="none", activation="none"), nn.Tanh())

    def features(self, identity: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """float (B, w, 112, 112): the decoder's last features, before the output head."""
        params = self.mlp(identity)
        skip_56 = self.encode_56(self.encode_112(target))
        x = self.encode_28(skip_56)
        for block, block_params in zip(self.blocks, params.split([b.num_adain_params for b in self.blocks], dim=1)):
            x = block(x, block_params)
        x = self.decode_56(torch.cat([F.interpolate(x, scale_factor=2.0, mode="nearest"), skip_56], dim=1))
        return self.decode_112(F.interpolate(x, scale_factor=2.0, mode="nearest"))

    def forward(self, identity: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.to_rgb(self.features(identity, target))


RESIDUAL_MASKS = ("none", "visibility")
_MASK_WINDOW = 7  # px of the 112x112 crop over which lightness and contrast are measured (about a third of an eye)
_FULL_BOUND_LIGHTNESS = 0.5  # local mean luma (0..1) from which the full bound applies; below it, the bound shrinks
_MIN_LIGHTNESS_SHARE = 0.08  # the smallest share the lightness factor leaves (a face in near-black keeps a little)
_FLAT_SHARE = 0.25  # the share left on perfectly flat skin
_FULL_BOUND_CONTRAST = 0.12  # local std / mean of luma from which texture masks the residual fully (LFW median 0.09)


def visibility_mask(target: torch.Tensor) -> torch.Tensor:
    """How much of the residual bound each pixel of the donor target can hide: float (B, 3, 112, 112) in [-1, 1]
    -> float (B, 1, 112, 112) in [0.02, 1].

    A change of fixed size is seen in proportion to the light around it (Weber) and is hidden by texture around it
    (contrast masking), the two effects image and video codecs use to place their error. v4's bound, the same 12/255
    everywhere, drew dark lines over faces in dim scenes (12/255 on a face of luma 30/255 is 40% of its brightness)
    and patterns on flat foreheads. The mask is the product of ``clamp(mean / 0.5, 0.08, 1)`` and
    ``clamp(0.25 + (std / mean) / 0.12, 0, 1)``, luma's mean and std over a 7x7 window: the full bound on lit,
    textured skin (eyes, brows, mouth), about a quarter of it on a face at 40% brightness.
    """
    rgb = (target.detach() + 1) / 2
    luma = (0.299 * rgb[:, 0:1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3]).clamp_min(0)
    pad = _MASK_WINDOW // 2
    mean = F.avg_pool2d(luma, _MASK_WINDOW, stride=1, padding=pad, count_include_pad=False)
    variance = F.avg_pool2d(luma * luma, _MASK_WINDOW, stride=1, padding=pad, count_include_pad=False) - mean * mean
    contrast = variance.clamp_min(1e-8).sqrt() / (mean + 0.02)
    lightness_share = (mean / _FULL_BOUND_LIGHTNESS).clamp(_MIN_LIGHTNESS_SHARE, 1.0)
    texture_share = (_FLAT_SHARE + contrast / _FULL_BOUND_CONTRAST).clamp(max=1.0)
    return lightness_share * texture_share


class InjectionGenerator(DonorGenerator):
    """G as identity injection (``model.generator: inject``, issue 17): the donor target plus a small bounded residual.

    ``output = clamp(target + bound * tanh(r), -1, 1)`` with ``r`` a 3-channel map decoded from the target's features
    under the identity vector's AdaIN (the same body as :class:`DonorGenerator`) and ``bound`` learned, at most
    ``max_bound`` (model range [-1, 1]: 12/255 of the 0..255 scale is 0.094). The face a viewer sees is the donor
    target's, exactly, up to that bound; everything the person's identity adds for a recogniser is in the residual,
    which is penalised at low frequencies (``loss.residual_colour``: no colour or lightness drift against the scene).
    Why: v3's free decoder turned the natural donor target into blotched, glowing faces and still lost identity; a
    per-face optimised residual of 12/255 on the bare donor target raised an independent recogniser's TAR at FAR 1e-5
    from 0.02% to 23% (issue 17). This network amortises that optimisation.

    ``mask="visibility"`` scales the bound per pixel by :func:`visibility_mask` of the target (v5, the release): the
    residual may be as large as before only where the target's light and texture hide it.

    Same inputs and output as :class:`DonorGenerator` (so the served generator's tensors are unchanged), plus
    :meth:`residual_and_bound` for the losses.
    """

    def __init__(self, identity_dim: int, width: int = 32, res_blocks: int = 4, mlp_dim: int = 256,
                 max_bound: float = 0.094, mask: str = "none") -> None:
        super().__init__(identity_dim, width, res_blocks, mlp_dim)
        del self.to_rgb
        if not 0 < max_bound <= 1:
            raise ValueError(f"model.residual_bound must be in (0, 1] (model range; 12/255 of 0..255 is 0.094), got {max_bound}")
        if mask not in RESIDUAL_MASKS:
            raise ValueError(f"model.residual_mask must be one of {', '.join(RESIDUAL_MASKS)}, got {mask!r}")
        self.max_bound = float(max_bound)
        self.mask = mask
        # A new head (not to_rgb: weights copied from an AdaIN generator must not seed it), zero at the start, so
        # training starts from the bare donor target.
        self.to_residual = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(width, 3, 3))
        nn.init.zeros_(self.to_residual[1].weight)
        nn.init.zeros_(self.to_residual[1].bias)
        self.bound_logit = nn.Parameter(torch.tensor(2.0))  # sigmoid(2) = 0.88 of max_bound to start

    def bound(self) -> torch.Tensor:
        """float 0-dim: the learned bound, in (0, max_bound)."""
        return self.max_bound * torch.sigmoid(self.bound_logit)

    def residual_and_bound(self, identity: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(float (B, 3, 112, 112) residual in [-bound, bound], the bound): what :meth:`forward` adds to the target
        (with ``mask="visibility"``, at most ``bound`` times :func:`visibility_mask` at each pixel)."""
        bound = self.bound()
        residual = bound * torch.tanh(self.to_residual(self.features(identity, target)))
        return (residual * visibility_mask(target) if self.mask == "visibility" else residual), bound

    def forward(self, identity: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        residual, _ = self.residual_and_bound(identity, target)
        return (target + residual).clamp(-1, 1)


@dataclass
class DonorOutputs:
    """One training step's generator side (donor design), for :data:`training.losses.DONOR_TERMS`.

    Images float (B, 3, 112, 112) in [-1, 1]; D the identity vector's length; K training identities.
    """

    id_source: torch.Tensor  # (B, D, 1, 1) E_I(source)
    generated: torch.Tensor  # (B, 3, 112, 112) G(E_I(source), target): the camouflaged face
    recon_self: torch.Tensor | None = None  # (B, 3, 112, 112) G(E_I(source), source); None when not asked for
    logits_source: torch.Tensor | None = None  # (B, K) identity classifier on E_I(source); None without a classifier
    logits_generated: torch.Tensor | None = None  # (B, K) ... on E_I(generated)
    residual: torch.Tensor | None = None  # (B, 3, 112, 112) generated - target before clamping (injection G only)
    bound: torch.Tensor | None = None  # 0-dim: the injection G's learned bound on |residual|
    bound_share: torch.Tensor | None = None  # 0-dim: that bound over its maximum (model.residual_bound)

    def fake_images(self) -> torch.Tensor:
        """float (B or 2B, 3, 112, 112): what the discriminator judges (camouflaged faces, then reconstructions)."""
        return self.generated if self.recon_self is None else torch.cat([self.generated, self.recon_self])


class DonorCamouflageNet(nn.Module):
    """E_I (vector), its identity classifier and G (donor-guided): everything the generator-side optimiser updates.

    Built with ``num_identities=0`` it has no classifier and, unless ``inference=False``, serves inference only.
    """

    design = DONOR

    def __init__(self, config: ModelConfig, num_identities: int = 0, inference: bool | None = None) -> None:
        super().__init__()
        # (the injection G trains without a classifier: built with num_identities=0 and inference=False)
        self.inference = num_identities == 0 if inference is None else inference
        self.identity_encoder = IdentityVectorEncoder(config.identity_width, config.identity_res_blocks, config.identity_dim,
                                                      config.identity_pool)
        self.classifier = (_VectorClassifier(config.identity_dim, num_identities, config.classifier_embedding)
                           if num_identities > 0 else None)
        if config.generator not in ("adain", "inject"):
            raise ValueError(f"model.generator must be adain or inject, got {config.generator!r}")
        self.generator = (InjectionGenerator(config.identity_dim, config.structure_width, config.generator_res_blocks,
                                             config.mlp_dim, config.residual_bound, config.residual_mask) if config.generator == "inject" else
                          DonorGenerator(config.identity_dim, config.structure_width, config.generator_res_blocks, config.mlp_dim))

    def camouflage(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """float (B, 3, 112, 112) source and donor target in [-1, 1] -> the camouflaged face, same shape."""
        return self.generator(self.identity_encoder(source), target)

    def forward(self, source: torch.Tensor, target: torch.Tensor, reconstruct: bool = True) -> DonorOutputs:
        """One step: float (B, 3, 112, 112) sources and their donor targets in [-1, 1] -> :class:`DonorOutputs`.

        ``reconstruct``: also run G on the source as its own target (``recon_self``). The classifier's logits are
        computed when the network has one (built with ``num_identities > 0``).

        Raises:
            RuntimeError: for a network built for inference (load it for training with ``inference=False``)."""
        if self.inference:
            raise RuntimeError("this DonorCamouflageNet was built for inference (num_identities=0); build it with "
                               "inference=False (and num_identities > 0 when loss.identity is on) to train")
        id_source = self.identity_encoder(source)
        residual = bound = None
        if isinstance(self.generator, InjectionGenerator):
            residual, bound = self.generator.residual_and_bound(id_source, target)
            generated = (target + residual).clamp(-1, 1)
        else:
            generated = self.generator(id_source, target)
        return DonorOutputs(
            id_source=id_source,
            generated=generated,
            recon_self=self.generator(id_source, source) if reconstruct else None,
            logits_source=self.classifier(id_source) if self.classifier is not None else None,
            logits_generated=self.classifier(self.identity_encoder(generated)) if self.classifier is not None else None,
            residual=residual,
            bound=bound,
            bound_share=bound / self.generator.max_bound if bound is not None else None,
        )


class _VectorClassifier(nn.Module):
    """Softmax head over the training identities on the identity vector: float (B, D, 1, 1) -> (B, K) logits."""

    def __init__(self, dim: int, num_identities: int, embedding: int = 256) -> None:
        super().__init__()
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(dim, embedding), nn.BatchNorm1d(embedding))
        self.logits = nn.Linear(embedding, num_identities)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.logits(self.embed(code))


__all__ = ["DonorCamouflageNet", "DonorGenerator", "DonorOutputs", "IdentityVectorEncoder", "InjectionGenerator"]
