"""torchvision ResNets adapted to small (32x32) images."""

from __future__ import annotations

from torch import nn
from torchvision.models import resnet18


def cifar_resnet18(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """ResNet-18 with a 3x3 stride-1 stem and no max-pool.

    The ImageNet stem (7x7 stride 2 + max-pool) shrinks a 32x32 image to 8x8 before the first block and
    costs several points of CIFAR accuracy; the CIFAR stem keeps full resolution into stage one.
    """
    model = resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model
