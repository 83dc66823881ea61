# SPDX-License-Identifier: Apache-2.0
"""Building blocks shared by the networks: convolution units, residual blocks and AdaIN as a plain function."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def adain(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Adaptive instance normalisation: ``instance_norm(x) * (1 + gamma) + beta``.

    Args:
        x: float (B, C, H, W) features.
        gamma, beta: float (B, C) scale offset and shift computed from the appearance code; ``1 + gamma``
            keeps a freshly initialised network close to plain instance normalisation.
    """
    return F.instance_norm(x, eps=eps) * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]


class LayerNorm2d(nn.Module):
    """Layer normalisation over (C, H, W) per sample with a per-channel affine (MUNIT's decoder norm):
    unlike instance norm it keeps the relative contrast between channels that the AdaIN blocks set."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = x.std(dim=(1, 2, 3), keepdim=True)
        return (x - mean) / (std + self.eps) * self.weight[None, :, None, None] + self.bias[None, :, None, None]


def conv_unit(
    in_channels: int, out_channels: int, kernel: int, stride: int = 1, norm: str = "in", activation: str = "relu"
) -> nn.Sequential:
    """Reflection-padded convolution, normalisation ("in", "bn", "ln" or "none") and activation
    ("relu", "lrelu" or "none")."""
    padding = (kernel - 1) // 2 if stride == 1 else (kernel - stride + 1) // 2
    layers: list[nn.Module] = [nn.ReflectionPad2d(padding), nn.Conv2d(in_channels, out_channels, kernel, stride)]
    if norm == "in":
        layers.append(nn.InstanceNorm2d(out_channels, affine=True))
    elif norm == "bn":
        layers.append(nn.BatchNorm2d(out_channels))
    elif norm == "ln":
        layers.append(LayerNorm2d(out_channels))
    elif norm != "none":
        raise ValueError(f"unknown norm {norm!r}")
    if activation == "relu":
        layers.append(nn.ReLU(inplace=True))
    elif activation == "lrelu":
        layers.append(nn.LeakyReLU(0.2, inplace=True))
    elif activation != "none":
        raise ValueError(f"unknown activation {activation!r}")
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with instance norm and a skip connection; shape-preserving (B, C, H, W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_unit(channels, channels, 3), conv_unit(channels, channels, 3, activation="none"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class AdaINResidualBlock(nn.Module):
    """Residual block whose two normalisations are AdaIN driven by the appearance code.

    ``forward(x, params)``: x float (B, C, H, W); params float (B, 4C) = (gamma1, beta1, gamma2, beta2).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.conv1 = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3))
        self.conv2 = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3))

    @property
    def num_adain_params(self) -> int:
        return 4 * self.channels

    def forward(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        gamma1, beta1, gamma2, beta2 = params.chunk(4, dim=1)
        y = F.relu(adain(self.conv1(x), gamma1, beta1))
        y = adain(self.conv2(y), gamma2, beta2)
        return x + y


def adain_mlp(code_dim: int, hidden: int, num_params: int) -> nn.Sequential:
    """The MLP that turns a flattened code (float (B, code_dim, ...)) into every AdaIN block's parameters,
    float (B, num_params): shared by both designs' generators."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(code_dim, hidden), nn.ReLU(inplace=True),
        nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
        nn.Linear(hidden, num_params),
    )
