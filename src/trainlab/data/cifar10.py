"""CIFAR-10 read from its official python format into uint8 tensors.

We read the pickled batches ourselves rather than through torchvision's `CIFAR10`: that class md5-checks
every batch file, so it refuses any data not byte-identical to the official release (including the
real-format batches our tests write). The archive's md5 is still checked when we download it.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.datasets.utils import download_and_extract_archive

from trainlab.data.base import ImageDataModule, Splits
from trainlab.data.datasets import TensorImageDataset
from trainlab.data.stratified import stratified_split
from trainlab.errors import ConfigError, DataError

ARCHIVE_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
BATCH_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META_FILE = "batches.meta"
EXPECTED_FILES = (*TRAIN_BATCHES, TEST_BATCH, META_FILE)


def _unpickle(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            content = pickle.load(f, encoding="latin1")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as err:
        raise DataError(
            f"Cannot read CIFAR-10 file {path}: {err}. The file is damaged; delete {path.parent} and "
            "unpack the official archive again (or run with data.download=true)."
        ) from err
    if not isinstance(content, dict):
        raise DataError(f"{path} is not a CIFAR-10 python batch (expected a pickled dict).")
    return content


def read_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One pickled batch -> uint8 images (N, 3, 32, 32) and int64 labels."""
    batch = _unpickle(path)
    try:
        data = np.asarray(batch["data"], dtype=np.uint8)
        labels = np.asarray(batch["labels"], dtype=np.int64)
        images = data.reshape(-1, 3, 32, 32)
    except (KeyError, ValueError) as err:
        raise DataError(
            f"{path} is not a CIFAR-10 python batch: expected keys 'data' (N x 3072 uint8) and "
            f"'labels' ({err!r})."
        ) from err
    if len(images) != len(labels):
        raise DataError(f"{path} holds {len(images)} images but {len(labels)} labels.")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels)


def read_class_names(batch_dir: Path) -> list[str]:
    return [str(name) for name in _unpickle(batch_dir / META_FILE)["label_names"]]


class CIFAR10DataModule(ImageDataModule):
    """45k/5k (val_size) stratified split of the training batches; the test batch is the test set."""

    supports_batched = True

    def __init__(
        self,
        *,
        root: str,
        download: bool = False,
        val_size: int = 5000,
        split_seed: int = 0,
        num_classes: int | None = 10,
        in_channels: int = 3,
        image_size: int = 32,
        **kwargs: Any,
    ) -> None:
        if in_channels != 3 or image_size != 32:
            raise ConfigError(
                f"CIFAR-10 images are 3x32x32, but data.in_channels={in_channels} and "
                f"data.image_size={image_size}. Keep the defaults, or add a Resize/Grayscale transform."
            )
        super().__init__(num_classes=num_classes, in_channels=in_channels, image_size=image_size, **kwargs)
        self.root = Path(root).expanduser()
        self.download = download
        self.val_size = val_size
        self.split_seed = split_seed

    @property
    def batch_dir(self) -> Path:
        return self.root / BATCH_DIR

    def missing_files(self) -> list[str]:
        return [name for name in EXPECTED_FILES if not (self.batch_dir / name).is_file()]

    def prepare_data(self) -> None:
        if not self.missing_files():
            return
        if self.download:
            self._download()
        missing = self.missing_files()
        if missing:
            problem = (
                f"{self.batch_dir} lacks {', '.join(missing)}"
                if self.batch_dir.is_dir()
                else f"{self.batch_dir} does not exist (expected {', '.join(EXPECTED_FILES)} there)"
            )
            raise DataError(
                f"CIFAR-10 not found: {problem}. Place the official archive {ARCHIVE_NAME} unpacked there "
                f"(or set data.root=DIR to where it is), run with data.download=true when online, or use "
                "data=digits for an offline run."
            )

    def _download(self) -> None:
        try:
            download_and_extract_archive(ARCHIVE_URL, str(self.root), filename=ARCHIVE_NAME, md5=ARCHIVE_MD5)
        except Exception as err:  # network errors and md5 mismatches come in many types
            raise DataError(
                f"Downloading CIFAR-10 from {ARCHIVE_URL} into {self.root} failed: {err}. Without network "
                f"access, copy {ARCHIVE_NAME} (md5 {ARCHIVE_MD5}) into {self.root} and unpack it there, "
                "or use data=digits for an offline run."
            ) from err

    def load_splits(self) -> Splits:
        self.prepare_data()
        parts = [read_batch(self.batch_dir / name) for name in TRAIN_BATCHES]
        images = torch.cat([p[0] for p in parts])
        labels = torch.cat([p[1] for p in parts])
        test_images, test_labels = read_batch(self.batch_dir / TEST_BATCH)
        if not 0 < self.val_size < len(images):
            raise ConfigError(
                f"data.val_size={self.val_size} must be between 1 and {len(images) - 1}, the number of "
                f"training images in {self.batch_dir} minus one."
            )
        val_fraction = self.val_size / len(images)
        train, val, _ = stratified_split(
            labels.tolist(), (1 - val_fraction, val_fraction, 0.0), self.split_seed
        )
        return Splits(
            train=TensorImageDataset(images[train], labels[train], self.train_transform),
            val=TensorImageDataset(images[val], labels[val], self.eval_transform),
            test=TensorImageDataset(test_images, test_labels, self.eval_transform),
            classes=read_class_names(self.batch_dir),
        )
