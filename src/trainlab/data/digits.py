"""scikit-learn's bundled handwritten digits: real data with no download, for quick offline runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from trainlab.data.base import ImageDataModule, Splits
from trainlab.data.datasets import TensorImageDataset
from trainlab.data.stratified import check_fractions, stratified_split


def load_digit_images(image_size: int, in_channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as uint8 (N, C, S, S) images, upscaled once (bilinear) from 8x8 grey levels 0..16."""
    digits = load_digits()
    images = torch.from_numpy(digits.images).float().unsqueeze(1) * (255.0 / 16.0)
    if image_size != images.shape[-1]:
        images = F.interpolate(images, size=(image_size, image_size), mode="bilinear", align_corners=False)
    images = images.round().clamp(0, 255).to(torch.uint8).expand(-1, in_channels, -1, -1).contiguous()
    return images, torch.from_numpy(digits.target).long()


class DigitsDataModule(ImageDataModule):
    """The digits split (stratified, seeded) into train/val/test; all held in memory."""

    supports_batched = True

    def __init__(
        self,
        *,
        split: Sequence[float] = (0.8, 0.1, 0.1),
        split_seed: int = 0,
        num_classes: int | None = 10,
        in_channels: int = 1,
        image_size: int = 32,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels, image_size=image_size, **kwargs)
        self.split = check_fractions(split)
        self.split_seed = split_seed

    def load_splits(self) -> Splits:
        images, labels = load_digit_images(self.image_size, self.in_channels)
        train, val, test = stratified_split(labels.tolist(), self.split, self.split_seed)

        def subset(idx: list[int], transform: Any) -> TensorImageDataset:
            return TensorImageDataset(images[idx], labels[idx], transform)

        return Splits(
            train=subset(train, self.train_transform),
            val=subset(val, self.eval_transform),
            test=subset(test, self.eval_transform) if test else None,
            classes=[str(d) for d in range(10)],
        )
