# SPDX-License-Identifier: Apache-2.0
"""The networks of both designs (the paper's, and the donor-guided one of :mod:`training.models.donor`) and the
bundles that train them."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from facecamo.design import PAPER, design_named
from training.config import ModelConfig
from training.models.appearance_encoder import AppearanceEncoder
from training.models.discriminator import MultiScaleDiscriminator
from training.models.generator import Generator
from training.models.identity_encoder import IdentityClassifier, IdentityEncoder

__all__ = ["AppearanceEncoder", "CamouflageNet", "build_network", "inference_parts", "Generator", "GeneratorOutputs", "IdentityClassifier", "IdentityEncoder",
           "MultiScaleDiscriminator", "build_discriminator"]


@dataclass
class GeneratorOutputs:
    """Everything one training step's generator side computes, for the losses (:mod:`training.losses`) to read.

    B is the number of sources; C the identity code's channels; A the appearance code's channels; K the number of
    training identities. Images are float in [-1, 1].
    """

    id_source: torch.Tensor  # (B, C, 28, 28) E_I(source)
    app_reference: torch.Tensor  # (B, A, 4, 1) E_A(reference)
    recon_self: torch.Tensor  # (B, 3, 112, 112) G(E_I(source), E_A(source)): should give back the source
    recon_partner: torch.Tensor  # (B, 3, 112, 112) G(E_I(partner), E_A(source)): same person, another photo
    generated: torch.Tensor  # (B, 3, 112, 112) G(E_I(source), E_A(reference)): the camouflaged face
    id_generated: torch.Tensor  # (B, C, 28, 28) E_I(generated)
    app_generated: torch.Tensor  # (B, A, 4, 1) E_A(generated)
    logits_source: torch.Tensor  # (B, K) identity classifier on E_I(source)
    logits_partner: torch.Tensor  # (B, K) ... on E_I(partner)
    logits_generated: torch.Tensor  # (B, K) ... on E_I(generated)

    def fake_images(self) -> torch.Tensor:
        """float (2B, 3, 112, 112): the generated faces the discriminator judges (cross-identity, then partner)."""
        return torch.cat([self.generated, self.recon_partner])


class CamouflageNet(nn.Module):
    """E_I, its identity classifier, E_A and G: everything the generator-side optimisers update.

    ``forward`` runs one training step's generator-side computation in a single call, so that one
    DistributedDataParallel wrapper sees every use of every parameter. Built with ``num_identities=0`` it has no
    classifier and serves inference only (:meth:`camouflage`).
    """

    design = PAPER

    def __init__(self, config: ModelConfig, num_identities: int = 0) -> None:
        super().__init__()
        self.identity_encoder = IdentityEncoder(config.identity_width, config.identity_res_blocks, config.identity_grayscale)
        # Inference (num_identities == 0) has no classifier: it only exists to train E_I.
        self.classifier = (IdentityClassifier(self.identity_encoder.out_channels, num_identities, config.classifier_embedding)
                           if num_identities > 0 else None)
        self.appearance_encoder = AppearanceEncoder(config.appearance_arch, config.appearance_width)
        appearance_dim = self.appearance_encoder.out_channels * self.appearance_encoder.pool_shape[0] * self.appearance_encoder.pool_shape[1]
        self.generator = Generator(self.identity_encoder.out_channels, appearance_dim, config.generator_res_blocks, config.mlp_dim)

    def camouflage(self, source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """Test-time use: float (B, 3, 112, 112) source and reference in [-1, 1] -> the source's identity with the
        reference's appearance, float (B, 3, 112, 112) in [-1, 1]."""
        return self.generator(self.identity_encoder(source), self.appearance_encoder(reference))

    def forward(self, source: torch.Tensor, partner: torch.Tensor, reference: torch.Tensor) -> GeneratorOutputs:
        """One step's generator-side outputs.

        Args:
            source: float (B, 3, 112, 112) in [-1, 1].
            partner: another image of each source's identity, same shape.
            reference: an image of a different identity per source, same shape.
        Returns: the codes, reconstructions, camouflaged faces and classifier logits (:class:`GeneratorOutputs`).
        Raises:
            RuntimeError: if the network was built without a classifier (``num_identities=0``: inference only).
        """
        if self.classifier is None:
            raise RuntimeError("this CamouflageNet was built for inference (num_identities=0); training needs the classifier")
        id_source = self.identity_encoder(source)  # (B, C, 28, 28)
        id_partner = self.identity_encoder(partner)
        app_source = self.appearance_encoder(source)  # (B, A, 4, 1)
        app_reference = self.appearance_encoder(reference)
        recon_self = self.generator(id_source, app_source)
        recon_partner = self.generator(id_partner, app_source)  # same person's identity from another photo
        generated = self.generator(id_source, app_reference)
        id_generated = self.identity_encoder(generated)
        return GeneratorOutputs(
            id_source=id_source,
            app_reference=app_reference,
            recon_self=recon_self,
            recon_partner=recon_partner,
            generated=generated,
            id_generated=id_generated,
            app_generated=self.appearance_encoder(generated),
            logits_source=self.classifier(id_source),
            logits_partner=self.classifier(id_partner),
            logits_generated=self.classifier(id_generated),
        )


def build_discriminator(config: ModelConfig) -> MultiScaleDiscriminator:
    """D: a PatchGAN per scale; called on float (N, 3, 112, 112) it returns one (N, 1, h, w) score map per scale."""
    return MultiScaleDiscriminator(config.discriminator_width, config.discriminator_layers, config.discriminator_scales)


def build_network(config: ModelConfig, num_identities: int = 0, inference: bool | None = None) -> nn.Module:
    """The generator-side bundle of ``config.design``: :class:`CamouflageNet` (paper) or
    :class:`training.models.donor.DonorCamouflageNet` (donor); ``num_identities=0`` builds it for inference unless
    ``inference=False`` (the donor design trained without its classifier)."""
    from training.models.donor import DonorCamouflageNet

    design = design_named(config.design)  # a name no design has fails here, listing the designs
    if design is DonorCamouflageNet.design:
        return DonorCamouflageNet(config, num_identities, inference)
    return CamouflageNet(config, num_identities)


def inference_parts(config: ModelConfig) -> tuple[str, ...]:
    """The sub-networks a release ships for a design (no classifier, no discriminator)."""
    return ("identity_encoder", "appearance_encoder", "generator") if design_named(config.design).appearance_encoder \
        else ("identity_encoder", "generator")
