"""Image folders: class subfolders of image files, already split or split here (the RMB set among them).

Accepted layouts under the chosen directory:
  split:  train/<class>/*  [val|valid/<class>/*]  [test/<class>/*]
  flat:   <class>/*        (split stratified and seeded, like the tutorials' split_dataset step)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from trainlab.data.base import ImageDataModule, Splits
from trainlab.data.batched import decode_steps
from trainlab.data.cache import cached_decode
from trainlab.data.datasets import ImageFileDataset, TensorImageDataset, unreadable_images
from trainlab.data.stratified import check_fractions, stratified_split
from trainlab.errors import ConfigError, DataError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".gif", ".tif", ".tiff", ".webp"}
)
VAL_DIR_NAMES = ("val", "valid")

Samples = list[tuple[Path, int]]


def printable(path: Path) -> str:
    """The path for a log line: bytes of a name that is not UTF-8 shown as escapes (\\xe9), so the line
    reaches a UTF-8 log file instead of failing there."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def class_dirs(directory: Path) -> list[str]:
    """Names of the visible subfolders: the classes of a class-folder layout, sorted."""
    return sorted(p.name for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))


def scan_class_folders(directory: Path, classes: Sequence[str]) -> Samples:
    """(file, label) pairs for every image in directory/<class>/, labels by position in `classes`."""
    found = class_dirs(directory)
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise DataError(
            f"{directory} has class folders {unknown} that are not among the classes {list(classes)}. "
            "Remove them, or list every class in data.classes."
        )
    samples: Samples = []
    for label, name in enumerate(classes):
        folder = directory / name
        files = sorted(p for p in folder.iterdir() if is_image(p)) if folder.is_dir() else []
        if folder.is_dir() and not files:
            raise DataError(
                f"Class folder {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}). "
                "Add images or remove the folder."
            )
        samples.extend((f, label) for f in files)
    return samples


def find_dataset_dir(root: Path, layouts: Sequence[str]) -> Path:
    """The first of root/<layout> that exists, or root itself when no layouts are given."""
    if not root.is_dir():
        raise DataError(
            f"Image folder {root} does not exist. Set data.root=DIR to a folder of class subfolders"
            + (f" (or holding one of {list(layouts)})" if layouts else "")
            + ", or use data=digits for an offline run."
        )
    for name in layouts:
        if (root / name).is_dir():
            return root / name
    if layouts:
        raise DataError(
            f"{root} holds none of {list(layouts)}. Put the images in {root / layouts[-1]}/<class>/ "
            "(or a split in " + f"{root / layouts[0]}/{{train,valid,test}}/<class>/), or set data.root."
        )
    return root


class ImageFolderDataModule(ImageDataModule):
    """Class-folder images decoded per access; split on the fly when the folder is not split already."""

    supports_batched = True

    def __init__(
        self,
        *,
        root: str,
        layouts: Sequence[str] = (),
        classes: Sequence[str] | None = None,
        split: Sequence[float] = (0.8, 0.1, 0.1),
        split_seed: int = 0,
        skip_bad_images: bool = False,
        cache_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        if self.batch_transforms:
            self.decode_steps = decode_steps(kwargs.get("train_transforms") or [])
            if repr(decode_steps(kwargs.get("eval_transforms") or [])) != repr(self.decode_steps):
                raise ConfigError(
                    "data.pipeline=batched decodes each image once for training and evaluation alike, so "
                    "data.train_transforms and data.eval_transforms must begin with the same Resize / "
                    "CenterCrop / Grayscale steps; make them equal or use data.pipeline=torchvision."
                )
        self.skip_bad_images = skip_bad_images
        self.skipped_images: dict[Path, str] = {}
        self.root = Path(root).expanduser()
        self.layouts = list(layouts)
        self.class_names = list(classes) if classes else None
        self.split = check_fractions(split)
        self.split_seed = split_seed

    def load_splits(self) -> Splits:
        directory = find_dataset_dir(self.root, self.layouts)
        if (directory / "train").is_dir():
            train, val, test, classes = self._read_split_layout(directory)
        else:
            classes = self._classes(directory)
            train, val, test = self._split(scan_class_folders(directory, classes), self.split)

        if self.skip_bad_images:
            self._find_unreadable(train + val + test)
            train, val, test = (
                [s for s in part if s[0] not in self.skipped_images] for part in (train, val, test)
            )

        if self.batch_transforms:
            return self._decoded_splits(train, val, test, classes)

        def dataset(samples: Samples, transform: Any) -> ImageFileDataset:
            paths, labels = zip(*samples, strict=True) if samples else ((), ())
            return ImageFileDataset(paths, labels, transform, self.in_channels)

        return Splits(
            train=dataset(train, self.train_transform),
            val=dataset(val, self.eval_transform),
            test=dataset(test, self.eval_transform) if test else None,
            classes=classes,
        )

    def _decoded_splits(self, train: Samples, val: Samples, test: Samples, classes: list[str]) -> Splits:
        """data.pipeline=batched: every image decoded once (one tensor for all splits, one cache file)."""
        samples = train + val + test
        mode = "L" if self.in_channels == 1 else "RGB"
        images = cached_decode([path for path, _ in samples], mode, self.decode_steps, self.cache_dir)
        labels = torch.tensor([label for _, label in samples], dtype=torch.long)
        bounds = [0, len(train), len(train) + len(val), len(samples)]
        parts = [slice(bounds[i], bounds[i + 1]) for i in range(3)]
        train_set, val_set, test_set = (TensorImageDataset(images[p], labels[p], None) for p in parts)
        return Splits(train=train_set, val=val_set, test=test_set if test else None, classes=classes)

    def _read_split_layout(self, directory: Path) -> tuple[Samples, Samples, Samples, list[str]]:
        classes = self._classes(directory / "train")
        train = scan_class_folders(directory / "train", classes)
        val_dir = next((directory / n for n in VAL_DIR_NAMES if (directory / n).is_dir()), None)
        test = scan_class_folders(directory / "test", classes) if (directory / "test").is_dir() else []
        if val_dir is not None:
            return train, scan_class_folders(val_dir, classes), test, classes
        train_f, val_f, _ = self.split
        carved = self._split(train, (train_f / (train_f + val_f), val_f / (train_f + val_f), 0.0))
        return carved[0], carved[1], test, classes

    def _find_unreadable(self, samples: Samples) -> None:
        """skip_bad_images=true: decode every image once up front; those that fail are left out."""
        bad = unreadable_images([path for path, _ in samples], "L" if self.in_channels == 1 else "RGB")
        self.skipped_images = bad
        if bad:
            shown = "; ".join(f"{printable(path)} ({reason})" for path, reason in list(bad.items())[:5])
            log.warning(
                "skip_bad_images: left out %d unreadable image(s) of %d: %s%s",
                len(bad),
                len(samples),
                shown,
                " ..." if len(bad) > 5 else "",
            )

    def _classes(self, directory: Path) -> list[str]:
        found = class_dirs(directory)
        if self.class_names is None:
            if not found:
                raise DataError(
                    f"{directory} has no class subfolders: put each class's images in {directory}/<class>/."
                )
            return found
        missing = [c for c in self.class_names if c not in found]
        if missing:
            raise DataError(
                f"{directory} lacks the class folders {missing} (data.classes={self.class_names}). "
                f"Found: {found or 'no folders'}."
            )
        return self.class_names

    def _split(self, samples: Samples, fractions: Sequence[float]) -> tuple[Samples, Samples, Samples]:
        labels = [label for _, label in samples]
        parts = stratified_split(labels, fractions, self.split_seed)
        return tuple([samples[i] for i in part] for part in parts)  # type: ignore[return-value]
