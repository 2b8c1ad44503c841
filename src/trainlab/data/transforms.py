"""Transform pieces torchvision lacks, usable in `data.train_transforms` / `data.eval_transforms` lists."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchvision.transforms import v2


class ToTensor(v2.Compose):
    """The tutorials' `ToTensor()`: PIL image or uint8 tensor -> float32 CHW in [0, 1].

    torchvision's own `ToTensor` rejects tensors, and our datasets hand out uint8 tensors (CIFAR-10 and
    digits are decoded once into memory) as well as PIL images (image folders), so one step takes both.
    """

    def __init__(self) -> None:
        super().__init__([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])


def compose(transforms: Sequence[Any] | None, image_size: int) -> v2.Compose:
    """Chain a config's transform list; an empty list still yields batchable float tensors of image_size."""
    steps = list(transforms or [])
    return v2.Compose(steps or [v2.Resize((image_size, image_size), antialias=True), ToTensor()])
