"""Image files decoded once into one uint8 tensor, optionally kept on disk beside the images.

Decoding a 1134x586 banknote JPEG costs milliseconds; doing it every epoch dominates a small model's
step. The batched pipeline decodes each file once (through the config's leading deterministic steps,
e.g. Resize, so all images share one size) and trains from memory. With `data.cache_dir` the tensor is
saved there, keyed by the files (paths, sizes, mtimes) and the steps, so a second run skips decoding
entirely and any change to the images or the steps makes a new cache file. The cache lives wherever the
user points it, not inside the dataset, because datasets often sit on read-only or shared storage.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from torchvision.transforms import v2

from trainlab.atomic import atomic_write
from trainlab.data.datasets import SKIP_BAD_IMAGES, read_image
from trainlab.errors import DataError

log = logging.getLogger(__name__)


def decode_all(paths: Sequence[Path], mode: str, steps: Sequence[Any]) -> torch.Tensor:
    """uint8 (N, C, H, W) of every file after `steps`; all must come out the same size.

    Decoded by a thread per core: PIL releases the GIL while it decodes, so 50,000 small JPEGs take
    half the time on two cores.
    """
    prepare = v2.Compose([*steps, v2.PILToTensor()])

    def decode(path: Path) -> torch.Tensor:
        return prepare(read_image(path, mode, advice=SKIP_BAD_IMAGES))

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        images = list(pool.map(decode, paths))
    if not images:
        return torch.empty(0, 1 if mode == "L" else 3, 1, 1, dtype=torch.uint8)
    for path, image in zip(paths, images, strict=True):
        if image.shape != images[0].shape:
            raise DataError(
                f"{path} decodes to {tuple(image.shape)} but {paths[0]} to {tuple(images[0].shape)}: "
                "data.pipeline=batched keeps one tensor of equal-sized images. Start the transform lists "
                "with a Resize to a fixed [height, width], or use data.pipeline=torchvision."
            )
    return torch.stack(images)


def cache_key(paths: Sequence[Path], mode: str, steps: Sequence[Any]) -> str:
    digest = hashlib.sha256(f"{mode}|{steps!r}".encode())
    for path in paths:
        stat = path.stat()
        digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:24]


def cached_decode(
    paths: Sequence[Path], mode: str, steps: Sequence[Any], cache_dir: Path | None
) -> torch.Tensor:
    """decode_all, read from / written to a file in cache_dir when one is given."""
    if cache_dir is None:
        return decode_all(paths, mode, steps)
    file = cache_dir / f"{cache_key(paths, mode, steps)}.pt"
    if file.is_file():
        try:
            images = torch.load(file, weights_only=True)
            if isinstance(images, torch.Tensor) and len(images) == len(paths):
                log.info("decoded images read from %s", file)
                return images
        except (OSError, RuntimeError, EOFError):
            pass
        log.warning("image cache %s does not read; decoding the images again", file)
    images = decode_all(paths, mode, steps)
    try:
        atomic_write(file, lambda handle: torch.save(images, handle))
        log.info("decoded %d images once; cached in %s", len(images), file)
    except OSError as err:  # a read-only data dir: train from memory, say why it will decode again
        log.warning("could not write the image cache %s (%s); the next run decodes again", file, err)
    return images
