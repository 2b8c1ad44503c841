"""LeNet-5 as used in the RMB banknote tutorial (same layer names, so its state dicts load)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LeNet(nn.Module):
    """conv 6@5x5 -> pool -> conv 16@5x5 -> pool -> fc 120 -> fc 84 -> fc classes, ReLU between."""

    def __init__(
        self, num_classes: int = 2, in_channels: int = 3, image_size: int = 32, init_weights: bool = True
    ) -> None:
        super().__init__()
        side = ((image_size - 4) // 2 - 4) // 2  # two unpadded 5x5 convs, each followed by a 2x2 pool
        if side < 1:
            raise ValueError(f"image_size={image_size}: LeNet needs images of at least 16x16 pixels")
        self.conv1 = nn.Conv2d(in_channels, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * side * side, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)
        if init_weights:
            self.initialize_weights()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.max_pool2d(F.relu(self.conv1(x)), 2)
        out = F.max_pool2d(F.relu(self.conv2(out)), 2)
        out = out.flatten(1)
        out = F.relu(self.fc1(out))
        out = F.relu(self.fc2(out))
        return self.fc3(out)

    def initialize_weights(self) -> None:
        """The tutorial's init: Xavier-normal convs, N(0, 0.1) linears, zero biases."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_normal_(module.weight)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.1)
            else:
                continue
            if module.bias is not None:
                nn.init.zeros_(module.bias)
