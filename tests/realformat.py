"""Writers for small datasets in the real on-disk formats, with a learnable class signal.

Each class gets its own colour and stripe orientation plus noise, so a small CNN separates them in a
few epochs: end-to-end tests can then assert that a run learned, not only that it finished.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def class_image(
    label: int, num_classes: int, height: int, width: int, rng: np.random.Generator
) -> np.ndarray:
    """An HxWx3 uint8 image whose colour and stripe direction encode `label`."""
    hue = label / num_classes
    base = np.array(
        [np.cos(2 * np.pi * hue), np.cos(2 * np.pi * (hue + 1 / 3)), np.cos(2 * np.pi * (hue + 2 / 3))]
    )
    colour = 128 + 90 * base
    yy, xx = np.mgrid[0:height, 0:width]
    angle = np.pi * label / num_classes
    stripes = np.sin((np.cos(angle) * xx + np.sin(angle) * yy) * (2 * np.pi / max(4, min(height, width) / 4)))
    image = colour[None, None, :] + 40 * stripes[..., None] + rng.normal(0, 20, size=(height, width, 3))
    return image.clip(0, 255).astype(np.uint8)


def write_cifar10(root: Path, per_batch: int = 40, test_size: int = 100, seed: int = 0) -> Path:
    """root/cifar-10-batches-py with data_batch_1..5, test_batch and batches.meta, as the official release."""
    rng = np.random.default_rng(seed)
    batch_dir = root / "cifar-10-batches-py"
    batch_dir.mkdir(parents=True, exist_ok=True)

    def batch(n: int, name: str) -> dict:
        labels = [int(i % 10) for i in range(n)]
        rng.shuffle(labels)
        images = np.stack([class_image(y, 10, 32, 32, rng) for y in labels])  # N, H, W, C
        data = images.transpose(0, 3, 1, 2).reshape(n, 3072)  # channel-major rows, as in the release
        return {
            "batch_label": name,
            "labels": labels,
            "data": data,
            "filenames": [f"{i}.png" for i in range(n)],
        }

    for i in range(1, 6):
        _pickle(batch_dir / f"data_batch_{i}", batch(per_batch, f"training batch {i} of 5"))
    _pickle(batch_dir / "test_batch", batch(test_size, "testing batch 1 of 1"))
    _pickle(
        batch_dir / "batches.meta", {"num_cases_per_batch": per_batch, "label_names": list(CIFAR_CLASSES)}
    )
    return root


def write_cifar10_from_images(root: Path, images: np.ndarray, labels: Sequence[int], test_size: int) -> Path:
    """Real images (N, 32, 32, 3 uint8) in the official format: the last `test_size` become test_batch."""
    batch_dir = root / "cifar-10-batches-py"
    batch_dir.mkdir(parents=True, exist_ok=True)
    labels = list(labels)
    train_n = len(images) - test_size
    chunks = np.array_split(np.arange(train_n), 5)
    for i, idx in enumerate(chunks, start=1):
        data = images[idx].transpose(0, 3, 1, 2).reshape(len(idx), 3072)
        _pickle(batch_dir / f"data_batch_{i}", {"labels": [labels[j] for j in idx], "data": data})
    test = images[train_n:].transpose(0, 3, 1, 2).reshape(test_size, 3072)
    _pickle(batch_dir / "test_batch", {"labels": labels[train_n:], "data": test})
    _pickle(batch_dir / "batches.meta", {"label_names": list(CIFAR_CLASSES)})
    return root


def write_image_folder(
    directory: Path,
    classes: Sequence[str],
    per_class: int,
    seed: int = 0,
    size_range: tuple[int, int] = (40, 80),
) -> Path:
    """directory/<class>/<n>.jpg JPEGs of varying size (landscape, like banknote photos)."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(classes):
        (directory / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            height = int(rng.integers(*size_range))
            width = int(height * rng.uniform(1.6, 2.2))
            image = class_image(label, len(classes), height, width, rng)
            Image.fromarray(image).save(directory / name / f"{name}_{i:03d}.jpg", quality=90)
    return directory


def write_cifar10_folder(directory: Path, per_class: int, seed: int = 0) -> Path:
    """directory/<class>/<n>.jpg: 32x32 JPEGs in the ten CIFAR-10 class folders (like ../shared's copy)."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(CIFAR_CLASSES):
        (directory / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = class_image(label, len(CIFAR_CLASSES), 32, 32, rng)
            Image.fromarray(image).save(directory / name / f"{i:04d}.jpg", quality=75)
    return directory


def _pickle(path: Path, content: dict) -> None:
    with path.open("wb") as f:
        pickle.dump(content, f, protocol=2)
