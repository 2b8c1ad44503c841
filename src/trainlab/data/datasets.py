"""Map-style datasets over images held in memory (uint8 tensors) or on disk (image files)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset

from trainlab.errors import DataError

Transform = Callable[[object], torch.Tensor]
Key = int | tuple[int, int]  # an index, or (index, seed) from EpochShuffleSampler


def seeded(transform: Transform, image: object, key: Key) -> torch.Tensor:
    """Apply the transform; with a (index, seed) key, its random draws come from that seed alone."""
    if isinstance(key, int):
        return transform(image)
    with torch.random.fork_rng(devices=[]):
        # the CPU generator alone: torch.manual_seed() would also queue CUDA seeding, ~160 us a call
        torch.random.default_generator.manual_seed(key[1])
        return transform(image)


def index_of(key: Key) -> int:
    return key if isinstance(key, int) else key[0]


def seed_of(key: Key) -> int:
    """The sample's augmentation seed; evaluation keys (plain indices) have none and get 0."""
    return 0 if isinstance(key, int) else key[1]


def collate_batch(batch: Any) -> Any:
    """collate_fn for datasets whose __getitems__ already returns a whole batch."""
    if isinstance(batch, tuple):
        return batch
    return torch.utils.data.default_collate(batch)


class TensorImageDataset(Dataset):
    """Images decoded once into a uint8 (N, C, H, W) tensor; the transform runs per sample.

    Without a transform (data.pipeline=batched) it hands out raw uint8 images with their sample seeds,
    a whole batch per `__getitems__` call (one gather instead of a per-image loop); the augmentation then
    runs on the batch, on the training device (trainlab.data.batched).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Transform | None) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(
                f"expected uint8 images of shape (N, C, H, W), got {images.dtype} {tuple(images.shape)}"
            )
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels, self.transform = images, labels.long(), transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: Key) -> tuple[torch.Tensor, ...]:
        index = index_of(key)
        if self.transform is None:
            return self.images[index], self.labels[index], torch.tensor(seed_of(key))
        return seeded(self.transform, self.images[index], key), self.labels[index]

    def __getitems__(self, keys: list[Key]) -> Any:
        """DataLoader's batched fetch: with a transform, the usual list of samples (collated as usual);
        without, one ready (images, labels, seeds) batch."""
        if self.transform is not None:
            return [self[key] for key in keys]
        index = torch.tensor([index_of(key) for key in keys])
        seeds = torch.tensor([seed_of(key) for key in keys], dtype=torch.int64)
        return self.images[index], self.labels[index], seeds


class ImageFileDataset(Dataset):
    """Image files decoded on access with PIL, converted to RGB (or L for one channel)."""

    def __init__(
        self, paths: Sequence[Path], labels: Sequence[int], transform: Transform, in_channels: int = 3
    ) -> None:
        if len(paths) != len(labels):
            raise ValueError(f"{len(paths)} files but {len(labels)} labels")
        self.paths, self.labels, self.transform = list(paths), list(labels), transform
        self.mode = "L" if in_channels == 1 else "RGB"

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: Key) -> tuple[torch.Tensor, torch.Tensor]:
        index = index_of(key)
        path = self.paths[index]
        image = read_image(path, self.mode, context=f"sample {index}", advice=SKIP_BAD_IMAGES)
        return seeded(self.transform, image, key), torch.tensor(self.labels[index])

    def unreadable_files(self) -> dict[Path, str]:
        """Files that cannot be an image, by their first bytes (see `header_problem`)."""
        problems = {}
        for path in self.paths:
            problem = header_problem(path)
            if problem is not None:
                problems[path] = problem
        return problems


# The first bytes of the formats an image folder accepts (trainlab.data.imagefolder.IMAGE_SUFFIXES).
IMAGE_SIGNATURES = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",  # TIFF, little-endian
    b"MM\x00*",  # TIFF, big-endian
    *(f"P{n}".encode() for n in range(1, 7)),  # PBM, PGM, PPM
)


def header_problem(path: Path) -> str | None:
    """Why `path` cannot be an image file, from its first 12 bytes; None when it looks like one.

    Opening each file with PIL (which parses the whole header) is several times slower on a large folder
    (the README's Preflight section has the numbers); a file that starts right but is damaged further in
    is still found when it is decoded.
    """
    try:
        with open(path, "rb") as file:
            head = file.read(12)
    except OSError as err:
        return err.strerror or str(err)
    if not head:
        return "the file is empty"
    if head.startswith(IMAGE_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return None
    return "not an image: its first bytes match none of JPEG, PNG, GIF, BMP, TIFF, WebP, PNM"


SKIP_BAD_IMAGES = (
    "Replace or remove the file, or set data.skip_bad_images=true to leave unreadable images out, "
    "then run again."
)


def read_image(path: Path, mode: str, context: str = "", advice: str = "") -> Image.Image:
    """Decode the whole file (a truncated JPEG fails here, not half-grey later) into `mode`.

    The one place trainlab opens an image file. One that does not decode raises DataError
    "Cannot read image <path> (<context>): <reason>. <advice>" (the parts in brackets when given), the
    reason being PIL's error, which is also the DataError's __cause__.
    """
    try:
        with Image.open(path) as image:
            return image.convert(mode)
    except OSError as err:  # PIL's UnidentifiedImageError is an OSError
        where = f" ({context})" if context else ""
        raise DataError(f"Cannot read image {path}{where}: {err}. {advice}".rstrip()) from err


def unreadable_images(paths: Sequence[Path], mode: str) -> dict[Path, str]:
    """Each file that does not decode, with the reason; reads every image once."""
    problems = {}
    for path in paths:
        try:
            read_image(path, mode)
        except DataError as err:
            problems[path] = str(err.__cause__) or type(err.__cause__).__name__
    return problems
