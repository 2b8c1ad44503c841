"""The CIFAR-10 tutorial CNN ("Tudui"), kept layer for layer."""

from __future__ import annotations

import torch
from torch import nn


class TutorialCNN(nn.Module):
    """Conv(32,5) -> pool -> Conv(32,5) -> pool -> Conv(64,5) -> pool -> Linear(64) -> Linear(classes).

    The tutorial uses no activations; max-pooling is its only non-linearity. Split into `features` and
    `classifier` so parameter-group patterns can address the two halves.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, image_size: int = 32) -> None:
        super().__init__()
        side = image_size // 8  # three 2x2 poolings; the 5x5 convs are padded and keep the size
        if side < 1:
            raise ValueError(f"image_size={image_size}: the network needs images of at least 8x8 pixels")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 5, padding=2),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 5, padding=2),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.classifier = nn.Sequential(nn.Linear(64 * side * side, 64), nn.Linear(64, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


Tudui = (
    TutorialCNN  # the name in the configs of checkpoints written before the rename (trainlab.eval, predict)
)
