# SPDX-License-Identifier: Apache-2.0
"""G, the generator: AdaIN residual blocks on the identity code, driven by the appearance code, then upsampling."""

from __future__ import annotations

import torch
from torch import nn

from training.models.blocks import AdaINResidualBlock, adain_mlp, conv_unit


class Generator(nn.Module):
    """Decode (identity code, appearance code) into a face.

    Inputs:
        identity: float (B, C_id, 28, 28) from :class:`IdentityEncoder`.
        appearance: float (B, C_app, 4, 1) from :class:`AppearanceEncoder`.
    Output: float (B, 3, 112, 112) RGB in [-1, 1] (tanh).
    """

    def __init__(self, identity_channels: int, appearance_dim: int, res_blocks: int = 4, mlp_dim: int = 256) -> None:
        super().__init__()
        c = identity_channels
        self.blocks = nn.ModuleList(AdaINResidualBlock(c) for _ in range(res_blocks))
        num_params = sum(block.num_adain_params for block in self.blocks)
        self.mlp = adain_mlp(appearance_dim, mlp_dim, num_params)
        self.upsample = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"), conv_unit(c, c // 2, 5, norm="ln"),  # (B, c/2, 56, 56)
            nn.Upsample(scale_factor=2, mode="nearest"), conv_unit(c // 2, c // 4, 5, norm="ln"),  # (B, c/4, 112, 112)
            conv_unit(c // 4, 3, 7, norm="none", activation="none"),
            nn.Tanh(),
        )

    def adain_params(self, appearance: torch.Tensor) -> torch.Tensor:
        """float (B, C_app, 4, 1) -> float (B, sum of 4C per block)."""
        return self.mlp(appearance)

    def forward(self, identity: torch.Tensor, appearance: torch.Tensor) -> torch.Tensor:
        params = self.adain_params(appearance)
        x = identity
        for block, block_params in zip(self.blocks, params.split([b.num_adain_params for b in self.blocks], dim=1)):
            x = block(x, block_params)
        return self.upsample(x)
