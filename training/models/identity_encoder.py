# SPDX-License-Identifier: Apache-2.0
"""E_I, the identity encoder, and the softmax identity classifier that trains it (paper Sec. III-A, Eq. 5)."""

from __future__ import annotations

import torch
from torch import nn

from training.models.blocks import ResidualBlock, conv_unit


class IdentityEncoder(nn.Module):
    """Four convolutions and four residual blocks to a spatial identity code.

    Input: float (B, 3, 112, 112) RGB in [-1, 1].
    Output: float (B, 4 * width, 28, 28), unbounded (instance-normalised residual features).

    With ``grayscale=True`` the encoder sees only luminance (DG-Net's structure encoder does the same), so colour,
    skin tone and lighting can only reach the generator through the appearance code.
    """

    def __init__(self, width: int = 32, res_blocks: int = 4, grayscale: bool = False) -> None:
        super().__init__()
        self.out_channels = 4 * width
        self.grayscale = grayscale
        self.net = nn.Sequential(
            conv_unit(1 if grayscale else 3, width, 7),  # (B, w, 112, 112)
            conv_unit(width, 2 * width, 4, stride=2),  # (B, 2w, 56, 56)
            conv_unit(2 * width, 4 * width, 4, stride=2),  # (B, 4w, 28, 28)
            conv_unit(4 * width, 4 * width, 3),  # (B, 4w, 28, 28)
            *[ResidualBlock(4 * width) for _ in range(res_blocks)],
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.grayscale:
            image = 0.299 * image[:, 0:1] + 0.587 * image[:, 1:2] + 0.114 * image[:, 2:3]  # (B, 1, 112, 112)
        return self.net(image)


class IdentityClassifier(nn.Module):
    """Softmax head over the training identities on top of E_I's code.

    Input: float (B, C, h, w) identity code. Output: float (B, num_identities) logits.
    """

    def __init__(self, code_channels: int, num_identities: int, embedding: int = 256) -> None:
        super().__init__()
        self.embed = nn.Sequential(
            nn.Conv2d(code_channels, code_channels, 4, stride=4),  # (B, C, 7, 7): keeps where features are
            nn.Flatten(),
            nn.Linear(code_channels * 49, embedding),
            nn.BatchNorm1d(embedding),
        )
        self.logits = nn.Linear(embedding, num_identities)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.logits(self.embed(code))
