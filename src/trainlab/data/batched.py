"""Augmentation of whole uint8 batches on the training device: the fast path beside torchvision's.

torchvision's transforms run once per image in the loading process (about 5,000 CIFAR-10 images/s on
two cores here, where a small CNN trains at 1,000 to 5,000). Datasets held as uint8 tensors can instead
hand out whole batches and have them cropped, flipped, greyed and normalized in a handful of tensor ops on
the device that trains. `BatchTransform.from_transforms` reads the same transform list a config gives the
torchvision pipeline, so one config describes both; each random op draws per sample from that sample's
seed (handed out by the sampler), so a batch is augmented the same way whatever else is in it, on any
number of devices and after a resume, and with the same distribution as the torchvision op.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchvision.transforms import v2

from trainlab.data.transforms import ToTensor
from trainlab.errors import ConfigError

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights
_MASK32 = 0xFFFFFFFF


def uniform(seeds: torch.Tensor, stream: int) -> torch.Tensor:
    """One float in [0, 1) per seed, a pure function of (seed, stream): no generator state to carry.

    An integer hash (two xor-shift-multiply rounds on 32 bits, held in int64 so nothing overflows), so it
    is vectorized on any device and independent of the batch a sample lands in.
    """
    x = (seeds.to(torch.int64) ^ (stream * 0x9E3779B9)) & _MASK32
    for _ in range(2):
        x = (((x >> 16) ^ x) * 0x45D9F3B) & _MASK32
    x = ((x >> 16) ^ x) & _MASK32
    return x.to(torch.float64).div(2.0**32).to(torch.float32)


def uniform_int(seeds: torch.Tensor, stream: int, high: int) -> torch.Tensor:
    """Integers in [0, high), uniform, like torch.randint(high)."""
    return (uniform(seeds, stream) * high).long().clamp_(max=high - 1)


class PadCrop:
    """RandomCrop(size, padding): one window per sample at a random offset into the padded image.

    One gather per batch on uint8: each output pixel's source index in the flattened image. Constant
    padding pads the batch first (cheap on uint8); reflect, symmetric and edge map the padded positions
    back into the image instead, so no padded copy is made. No float round trip.
    """

    def __init__(self, size: tuple[int, int], padding: int, fill: float, mode: str, stream: int) -> None:
        self.size, self.padding, self.fill, self.mode, self.stream = size, padding, fill, mode, stream

    def __call__(self, images: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
        height, width = self.size
        p = self.padding
        free_y, free_x = images.shape[-2] + 2 * p - height, images.shape[-1] + 2 * p - width
        if free_y < 0 or free_x < 0:
            raise ValueError(f"crop {self.size} is larger than the padded image of {images.shape[-2:]}")
        device = images.device
        top = uniform_int(seeds, self.stream, free_y + 1).to(device)
        left = uniform_int(seeds, self.stream + 1, free_x + 1).to(device)
        rows = top[:, None] + torch.arange(height, device=device)  # (B, H) rows of the padded image
        cols = left[:, None] + torch.arange(width, device=device)  # (B, W)
        if self.mode == "constant":
            source = torch.nn.functional.pad(images, (p, p, p, p), value=self.fill) if p else images
        else:  # map padded positions back into the image: no padded copy needed
            source = images
            rows, cols = self._source(rows - p, images.shape[-2]), self._source(cols - p, images.shape[-1])
        # one gather over the flattened pixels of each channel: contiguous, and torch.gather is fast
        flat = (rows[:, :, None] * source.shape[-1] + cols[:, None, :]).flatten(1)  # (B, H * W)
        channels = source.shape[1]
        index = flat[:, None, :].expand(-1, channels, -1)
        crops = source.flatten(2).gather(2, index)
        return crops.view(len(images), channels, height, width)

    def _source(self, index: torch.Tensor, length: int) -> torch.Tensor:
        if self.mode == "reflect":  # -1 -> 1, length -> length - 2 (the edge pixel is not repeated)
            index = index.abs()
            return torch.where(index >= length, 2 * (length - 1) - index, index)
        if self.mode == "symmetric":  # -1 -> 0, length -> length - 1 (the edge pixel is repeated)
            index = torch.where(index < 0, -index - 1, index)
            return torch.where(index >= length, 2 * length - 1 - index, index)
        return index.clamp(0, length - 1)  # edge


class Flip:
    """RandomHorizontalFlip(p) (dim -1) or RandomVerticalFlip(p) (dim -2), per sample."""

    def __init__(self, p: float, dim: int, stream: int) -> None:
        self.p, self.dim, self.stream = p, dim, stream

    def __call__(self, images: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
        flip = (uniform(seeds, self.stream) < self.p).to(images.device)[:, None, None, None]
        return torch.where(flip, images.flip(self.dim), images)


class Gray:
    """RandomGrayscale(p): the chosen samples get the luminance in every channel."""

    def __init__(self, p: float, stream: int) -> None:
        self.p, self.stream = p, stream

    def __call__(self, images: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
        if images.shape[1] != 3:
            return images  # already one channel, as torchvision leaves it
        weights = torch.tensor(GRAY_WEIGHTS, device=images.device).view(1, 3, 1, 1)
        gray = (images.float() * weights).sum(dim=1, keepdim=True).expand_as(images)
        gray = gray.round().clamp(0, 255).to(images.dtype) if not images.is_floating_point() else gray
        chosen = (uniform(seeds, self.stream) < self.p).to(images.device)[:, None, None, None]
        return torch.where(chosen, gray, images)


class ToFloat:
    """ToTensor on a batch: uint8 -> float32 in [0, 1]."""

    def __call__(self, images: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
        return images.float().div_(255.0) if not images.is_floating_point() else images


class Normalize:
    """Normalize(mean, std) on a float batch; `from_uint8` folds a preceding ToTensor's 1/255 into it,
    so a uint8 batch becomes a normalized float batch in one conversion and two in-place passes."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], from_uint8: bool = False) -> None:
        scale = 255.0 if from_uint8 else 1.0
        self.shift = torch.tensor(mean).view(1, -1, 1, 1) * scale
        self.factor = 1.0 / (torch.tensor(std).view(1, -1, 1, 1) * scale)
        self.from_uint8 = from_uint8

    def __call__(self, images: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
        shift, factor = self.shift.to(images.device), self.factor.to(images.device)
        if self.from_uint8 and not images.is_floating_point():
            return images.float().sub_(shift).mul_(factor)
        if self.from_uint8:  # already float (an earlier op converted): apply ToTensor's scale first
            images = images / 255.0
            shift, factor = shift / 255.0, factor * 255.0
        return (images - shift) * factor


class BatchTransform:
    """A chain of batch ops: uint8 (B, C, H, W) images and (B,) int64 seeds in, float images out."""

    def __init__(self, steps: Sequence[Any]) -> None:
        self.steps = list(steps)

    def __call__(self, images: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
        for step in self.steps:
            images = step(images, seeds)
        return images if images.is_floating_point() else images.float().div_(255.0)

    @classmethod
    def from_transforms(cls, transforms: Sequence[Any], key: str) -> BatchTransform:
        """The batch equivalent of a config's torchvision list (`key` names it in errors)."""
        steps: list[Any] = []
        for i, transform in enumerate(transforms):
            step = _batch_op(transform, stream=10 * i, key=key)
            if isinstance(step, Normalize) and steps and isinstance(steps[-1], ToFloat):
                steps[-1] = Normalize(transform.mean, transform.std, from_uint8=True)
            else:
                steps.append(step)
        return cls(steps)


DETERMINISTIC = (v2.Resize, v2.CenterCrop, v2.Grayscale)  # the same for every sample: done once at decode


def decode_steps(transforms: Sequence[Any]) -> list[Any]:
    """The leading deterministic steps (e.g. Resize): image folders apply them once, when decoding into
    the in-memory uint8 cache, so every image has one size there."""
    steps = []
    for transform in transforms:
        if not isinstance(transform, DETERMINISTIC):
            break
        steps.append(transform)
    return steps


class Deterministic:
    """A torchvision op without randomness, applied to the whole batch at once."""

    def __init__(self, transform: Any) -> None:
        self.transform = transform

    def __call__(self, images: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
        return self.transform(images)


def _batch_op(transform: Any, stream: int, key: str) -> Any:
    if isinstance(transform, DETERMINISTIC):
        return Deterministic(transform)
    if isinstance(transform, ToTensor):
        return ToFloat()
    if isinstance(transform, v2.Normalize):
        return Normalize(transform.mean, transform.std)
    if isinstance(transform, v2.RandomHorizontalFlip | v2.RandomVerticalFlip):
        return Flip(transform.p, -1 if isinstance(transform, v2.RandomHorizontalFlip) else -2, stream)
    if isinstance(transform, v2.RandomGrayscale):
        return Gray(transform.p, stream)
    if isinstance(transform, v2.RandomCrop) and not transform.pad_if_needed:
        return _pad_crop(transform, stream, key)
    raise ConfigError(
        f"{key}: {type(transform).__name__} has no batched version (the batched pipeline does Resize, "
        "CenterCrop, Grayscale, RandomCrop, RandomHorizontalFlip, RandomVerticalFlip, RandomGrayscale, "
        "ToTensor and Normalize). Use "
        "data.pipeline=torchvision for per-image transforms."
    )


def _pad_crop(transform: v2.RandomCrop, stream: int, key: str) -> PadCrop:
    padding = transform.padding or [0]
    if len(set(padding)) != 1:
        raise ConfigError(f"{key}: RandomCrop with uneven padding {padding}; use data.pipeline=torchvision.")
    fill = transform.fill
    fill_value = fill.get(None, 0) if isinstance(fill, dict) else fill
    if isinstance(fill_value, Sequence | torch.Tensor):
        raise ConfigError(f"{key}: RandomCrop with a per-channel fill; use data.pipeline=torchvision.")
    mode = transform.padding_mode
    if mode not in ("constant", "reflect", "symmetric", "edge"):
        raise ConfigError(f"{key}: RandomCrop padding_mode={mode!r}; use data.pipeline=torchvision.")
    return PadCrop(tuple(transform.size), int(padding[0]), float(fill_value or 0), mode, stream)
