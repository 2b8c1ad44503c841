"""A small, wide-early, pool-fast CNN for quick CIFAR-10 runs (the shape of the speed-record nets).

The published fast CIFAR-10 recipes (David Page's ResNet-9, Keller Jordan's airbench) share a shape: a
cheap stem, three stages of conv -> max-pool -> BatchNorm -> activation that halve the resolution early,
so most compute runs on 16x16 and 8x8 maps, and a global max-pool into one bias-free linear layer whose
logits are scaled down (a temperature that keeps early training stable at high learning rates). Widths
are a parameter: on a GPU the record widths (64, 256, 256) are cheap; on a 2-core CPU narrower stages
buy more epochs in the same time, which matters more for time-to-accuracy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn


def conv_bn(c_in: int, c_out: int, pool: bool, activation: Activation) -> list[nn.Module]:
    """3x3 conv (no bias: BatchNorm supplies it), optionally a 2x2 max-pool, BatchNorm, activation.

    Pooling before the norm and activation runs them on a quarter of the positions.
    """
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    layers += [nn.BatchNorm2d(c_out), activation()]
    return layers


Activation = Callable[[], nn.Module]


class FastNet(nn.Module):
    """stem conv -> per stage [conv + pool, conv] -> global max-pool -> linear (scaled logits)."""

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        widths: Sequence[int] = (64, 128, 256),
        stem_width: int = 32,
        logit_scale: float = 0.125,
        activation: Activation = nn.GELU,
    ) -> None:
        super().__init__()
        layers = conv_bn(in_channels, stem_width, pool=False, activation=activation)
        c_in = stem_width
        for width in widths:
            layers += conv_bn(c_in, width, True, activation) + conv_bn(width, width, False, activation)
            c_in = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, num_classes, bias=False)
        self.logit_scale = logit_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = torch.amax(self.features(x), dim=(2, 3))
        return self.head(features) * self.logit_scale
