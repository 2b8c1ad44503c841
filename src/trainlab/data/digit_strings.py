"""Digit strings composed from scikit-learn's real handwritten digits: a sequence task with no download.

Each image is a row of 1..max_length digits on a fixed canvas, every digit drawn at its own random width,
height and vertical offset with random gaps, so a model cannot find the digits by position: it has to
read the strip left to right, which is what CTC is for. Train, val and test strings are built from
disjoint digit images (a stratified split of the 1,797 digits), so a test string never shows a digit
image seen in training. Validation and test strings are composed once; training strings are composed
when loaded, from the sample seed the sampler hands out (trainlab.data.sampling), so every epoch reads
new strings, reproducibly and resumably, from the ~1,080 training digits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from trainlab.data.base import ImageDataModule, Splits
from trainlab.data.datasets import Key, TensorImageDataset, Transform, index_of, seeded
from trainlab.data.digits import load_digit_images
from trainlab.data.stratified import check_fractions, stratified_split
from trainlab.data.transforms import ToTensor
from trainlab.errors import ConfigError
from trainlab.losses.targets import PAD


class DigitStringsDataModule(ImageDataModule):
    """Labels are (max_length,) tensors of digits padded with -1; `image_size` is the canvas height."""

    task = "sequence"

    def __init__(
        self,
        *,
        min_length: int = 1,
        max_length: int = 6,
        width: int = 80,
        digit_height: Sequence[int] = (10, 14),
        digit_width: Sequence[int] = (7, 10),
        gap: Sequence[int] = (0, 2),
        num_strings: Sequence[int] = (12000, 1000, 1000),
        split: Sequence[float] = (0.6, 0.2, 0.2),
        split_seed: int = 0,
        num_classes: int | None = 10,
        in_channels: int = 1,
        image_size: int = 16,
        **kwargs: Any,
    ) -> None:
        for key in ("train_transforms", "eval_transforms"):  # never the square resize of the default
            kwargs[key] = kwargs.get(key) or [ToTensor()]
        super().__init__(num_classes=num_classes, in_channels=in_channels, image_size=image_size, **kwargs)
        self.min_length, self.max_length = _check_range(
            "data.min_length/max_length", (min_length, max_length)
        )
        self.digit_height = _check_range("data.digit_height", digit_height, at_most=image_size)
        self.digit_width = _check_range("data.digit_width", digit_width)
        self.gap = _check_range("data.gap", gap, minimum=0)
        widest = max_length * (self.digit_width[1] + self.gap[1])  # a gap before every digit
        if width < widest:
            raise ConfigError(
                f"data.width={width} cannot hold {max_length} digits of up to {self.digit_width[1]} px with "
                f"gaps of up to {self.gap[1]} px ({widest} px): raise data.width or lower data.max_length."
            )
        if len(num_strings) != 3 or min(num_strings) < 1:
            raise ConfigError(
                f"data.num_strings={list(num_strings)}: give [train, val, test] counts, each >= 1."
            )
        self.width = width
        self.num_strings = [int(n) for n in num_strings]
        self.split = check_fractions(split)
        self.split_seed = split_seed

    def load_splits(self) -> Splits:
        digits, labels = load_digit_images(8, 1)
        pools = stratified_split(labels.tolist(), self.split, self.split_seed)
        if not pools[2]:
            raise ConfigError(f"data.split={list(self.split)} leaves no digits for test strings.")
        train = DigitStringDataset(
            self, digits[pools[0]], labels[pools[0]], self.num_strings[0], self.train_transform
        )
        fixed = []
        for part in (1, 2):
            generator = torch.Generator().manual_seed(self.split_seed * 1000 + part)
            pool_digits, pool_labels = digits[pools[part]], labels[pools[part]]
            images, strings = zip(
                *(self.compose(pool_digits, pool_labels, generator) for _ in range(self.num_strings[part])),
                strict=True,
            )
            fixed.append(TensorImageDataset(torch.stack(images), torch.stack(strings), self.eval_transform))
        return Splits(train, *fixed, classes=[str(d) for d in range(10)])

    def compose(
        self, digits: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One uint8 (C, image_size, width) canvas of a random string drawn from `digits`, and its label."""
        canvas = torch.zeros(1, self.image_size, self.width)
        string = torch.full((self.max_length,), PAD, dtype=torch.long)
        length = _draw(self.min_length, self.max_length, generator)
        picks = torch.randint(len(digits), (length,), generator=generator)
        x = _draw(0, self.gap[1], generator)
        for position, pick in enumerate(picks.tolist()):
            height = _draw(*self.digit_height, generator)
            width = _draw(*self.digit_width, generator)
            y = _draw(0, self.image_size - height, generator)
            glyph = F.interpolate(digits[pick : pick + 1].float(), size=(height, width), mode="bilinear")
            region = canvas[:, y : y + height, x : x + width]
            torch.maximum(region, glyph[0], out=region)
            string[position] = labels[pick]
            x += width + _draw(*self.gap, generator)
        image = canvas.round().clamp(0, 255).to(torch.uint8).expand(self.in_channels, -1, -1)
        return image.contiguous(), string

    @property
    def class_counts(self) -> list[int]:
        """Training digit images per class (for `auto` class weights)."""
        return torch.bincount(self._require_setup().train.digit_labels, minlength=self.num_classes).tolist()


class DigitStringDataset(Dataset):
    """`size` training strings per epoch, each composed when loaded from its sample seed.

    With a plain index (no sampler seed) the index itself seeds the string, so it is still reproducible.
    """

    def __init__(
        self,
        composer: DigitStringsDataModule,
        digits: torch.Tensor,
        digit_labels: torch.Tensor,
        size: int,
        transform: Transform,
    ) -> None:
        self.composer, self.digits, self.digit_labels = composer, digits, digit_labels
        self.size, self.transform = size, transform

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key: Key) -> tuple[torch.Tensor, torch.Tensor]:
        seed = key[1] if isinstance(key, tuple) else index_of(key)
        image, string = self.composer.compose(
            self.digits, self.digit_labels, torch.Generator().manual_seed(seed)
        )
        return seeded(self.transform, image, key), string


def _draw(low: int, high: int, generator: torch.Generator) -> int:
    """A uniform integer in [low, high]."""
    return int(torch.randint(low, high + 1, (1,), generator=generator))


def _check_range(
    key: str, bounds: Sequence[int], minimum: int = 1, at_most: int | None = None
) -> tuple[int, int]:
    if len(bounds) != 2:
        raise ConfigError(f"{key}={list(bounds)}: give two numbers, [low, high].")
    low, high = (int(b) for b in bounds)
    if low < minimum or high < low or (at_most is not None and high > at_most):
        limit = f" and at most {at_most}" if at_most is not None else ""
        raise ConfigError(f"{key}={list(bounds)}: give [low, high] with {minimum} <= low <= high{limit}.")
    return low, high
