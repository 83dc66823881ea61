# SPDX-License-Identifier: Apache-2.0
"""E_A, the appearance encoder: a hand-written ResNet (no torchvision here) without pooling and fc, then adaptive
max pooling to (C, 4, 1) as in the paper (C = 2048 for ResNet-50)."""

from __future__ import annotations

import torch
from torch import nn


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels),
        )
        self.shortcut = _shortcut(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
        )
        self.shortcut = _shortcut(in_channels, width, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels))


ARCHITECTURES = {"resnet50": (Bottleneck, (3, 4, 6, 3)), "resnet18": (BasicBlock, (2, 2, 2, 2))}


class AppearanceEncoder(nn.Module):
    """ResNet trunk + adaptive max pooling.

    Input: float (B, 3, 112, 112) RGB in [-1, 1].
    Output: float (B, C, 4, 1), C = 8 * width * expansion (2048 for ``resnet50`` at width 64), >= 0 (post-ReLU).
    """

    def __init__(self, arch: str = "resnet50", width: int = 64, pool: tuple[int, int] = (4, 1)) -> None:
        super().__init__()
        if arch not in ARCHITECTURES:
            raise ValueError(f"appearance encoder arch must be one of {sorted(ARCHITECTURES)}, got {arch!r}")
        block, depths = ARCHITECTURES[arch]
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )  # (B, w, 28, 28)
        stages, in_channels = [], width
        for index, depth in enumerate(depths):
            stage_width = width * 2**index
            for block_index in range(depth):
                stride = 2 if index > 0 and block_index == 0 else 1
                stages.append(block(in_channels, stage_width, stride))
                in_channels = stage_width * block.expansion
        self.stages = nn.Sequential(*stages)  # (B, C, 4, 4)
        self.pool = nn.AdaptiveMaxPool2d(pool)  # (B, C, 4, 1): 4 is a multiple of 4 and 1, so it exports to ONNX
        self.out_channels = in_channels
        self.pool_shape = tuple(pool)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.pool(self.stages(self.stem(image)))
