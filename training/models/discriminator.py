# SPDX-License-Identifier: Apache-2.0
"""D, the multi-scale PatchGAN discriminator (paper: 112, 56 and 28 px), least-squares objective."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from training.models.blocks import conv_unit


class PatchDiscriminator(nn.Module):
    """One scale: strided convolutions to a map of real/fake scores, float (B, 1, h, w), unbounded."""

    def __init__(self, width: int = 64, layers: int = 3) -> None:
        super().__init__()
        units, channels = [conv_unit(3, width, 4, stride=2, norm="none", activation="lrelu")], width
        for _ in range(layers - 1):
            units.append(conv_unit(channels, 2 * channels, 4, stride=2, norm="none", activation="lrelu"))
            channels *= 2
        units.append(nn.Conv2d(channels, 1, 1))
        self.net = nn.Sequential(*units)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)


class MultiScaleDiscriminator(nn.Module):
    """PatchGANs on the image at full, half and quarter size.

    Input: float (B, 3, 112, 112) RGB in [-1, 1]. Output: a list with one (B, 1, h_s, w_s) score map per scale.
    """

    def __init__(self, width: int = 64, layers: int = 3, scales: int = 3) -> None:
        super().__init__()
        self.scales = nn.ModuleList(PatchDiscriminator(width, layers) for _ in range(scales))

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for index, discriminator in enumerate(self.scales):
            if index:
                image = F.avg_pool2d(image, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(discriminator(image))
        return outputs
