"""Data benchmark: trainlab's train pipeline against torchvision's per-image pipeline, images per second.

    python benchmarks/data.py            # CIFAR-10 format (real images from ../shared when present) and RMB
    python benchmarks/data.py --quick    # small synthetic data, seconds (what the test suite runs)

CIFAR-10: the official pickled format is written to a temporary dir (from ../shared/data/cifar10-train
when present, else random images). The baseline is what torchvision's `datasets.CIFAR10` does per image:
`Image.fromarray`, RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize, in a DataLoader
with 0 and 2 workers. trainlab's `data=cifar10` train loader (`data.pipeline=batched`) hands out uint8
batches that `on_after_batch_transfer` augments; both are timed to a float batch ready for the model.

RMB: the banknote JPEGs, decoded per image every epoch (`data.pipeline=torchvision`) against decoded
once into memory (`batched`): the first epoch includes trainlab's decode, later epochs do not.

Every number is a ratio against the baseline measured in the same run; absolute speeds depend on the box.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from common import SHARED, cifar_images, machine, write_cifar_format
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from trainlab.data.cifar10 import CIFAR10DataModule
from trainlab.data.imagefolder import ImageFolderDataModule
from trainlab.data.transforms import ToTensor

MEAN, STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]
CIFAR_TRAIN = [v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(), ToTensor(), v2.Normalize(MEAN, STD)]
CIFAR_EVAL = [ToTensor(), v2.Normalize(MEAN, STD)]


class PerImageCIFAR(Dataset):
    """What torchvision.datasets.CIFAR10 does per item: HWC uint8 -> PIL -> transform."""

    def __init__(self, images: np.ndarray, labels: list[int]) -> None:
        self.images, self.labels = images, labels
        self.transform = v2.Compose(
            [v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(), v2.ToTensor(), v2.Normalize(MEAN, STD)]
        )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[index])), self.labels[index]


def images_per_second(batches: Callable[[], Iterable], ready: Callable = lambda b: b) -> float:
    """One pass over the loader, each batch made model-ready; images / wall seconds."""
    started, seen = time.perf_counter(), 0
    for batch in batches():
        images = ready(batch)[0]
        seen += len(images)
    return seen / (time.perf_counter() - started)


def cifar_rows(quick: bool) -> tuple[list[tuple[str, float]], str]:
    images, labels, what = cifar_images(2_000 if quick else 50_000, real=not quick)
    per_image = PerImageCIFAR(images, labels)
    rows = []
    for workers in (0, 2):
        loader = DataLoader(per_image, batch_size=128, shuffle=True, num_workers=workers)
        rate = images_per_second(lambda loader=loader: loader)
        rows.append((f"torchvision per-image, {workers} workers", rate))
    with tempfile.TemporaryDirectory() as tmp:
        write_cifar_format(Path(tmp), images, labels)
        dm = CIFAR10DataModule(
            root=tmp, batch_size=128, val_size=len(images) // 10, pipeline="batched",
            train_transforms=CIFAR_TRAIN, eval_transforms=CIFAR_EVAL,
        )  # fmt: skip
        dm.setup("fit")
        train = dm.batch_transforms["train"]
        rate = images_per_second(dm.train_dataloader, lambda b: (train(b[0], b[2]), b[1]))
        rows.append(("trainlab `data=cifar10` (batched, 0 workers)", rate))
    return rows, what


def rmb_rows(quick: bool) -> tuple[list[tuple[str, float, float]], str]:
    root = SHARED / "rmb"
    with tempfile.TemporaryDirectory() as tmp:
        if quick or not (root / "RMB_data").is_dir():
            root = Path(tmp)
            make_notes(root / "RMB_data", per_class=12 if quick else 100)
        rows = []
        for pipeline in ("torchvision", "batched"):
            started = time.perf_counter()
            dm = rmb_module(root, pipeline)
            dm.setup("fit")
            setup_s = time.perf_counter() - started
            transform = dm.batch_transforms.get("train")

            def ready(batch, transform=transform):
                return (transform(batch[0], batch[2]), batch[1]) if transform else batch

            epochs = [images_per_second(dm.train_dataloader, ready) for _ in range(2 if quick else 3)]
            count = len(dm.splits.train)
            first = count / (setup_s + count / epochs[0])  # the first epoch pays for setup (the decode)
            rows.append((f"`data=rmb data.pipeline={pipeline}`", first, float(np.mean(epochs[1:]))))
        what = f"{count} RMB training images" + (" (generated)" if root != SHARED / "rmb" else "")
    return rows, what


def rmb_module(root: Path, pipeline: str) -> ImageFolderDataModule:
    resize = v2.Resize([32, 32])
    return ImageFolderDataModule(
        root=str(root), layouts=["RMB_data"], classes=["1", "100"], num_classes=2, in_channels=3,
        image_size=32, batch_size=16, pipeline=pipeline,
        train_transforms=[resize, v2.RandomCrop(32, padding=4), v2.RandomGrayscale(0.8), ToTensor(),
                          v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])],
        eval_transforms=[resize, ToTensor(), v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])],
    )  # fmt: skip


def make_notes(directory: Path, per_class: int) -> None:
    """Banknote-sized JPEGs (1134x586) with class-dependent colour, when the real notes are absent."""
    rng = np.random.default_rng(0)
    for label, name in enumerate(["1", "100"]):
        (directory / name).mkdir(parents=True)
        for i in range(per_class):
            image = rng.integers(0, 64, (586, 1134, 3), dtype=np.uint8) + np.uint8(120 * label)
            Image.fromarray(image).save(directory / name / f"{i:03d}.jpg", quality=90)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small synthetic data, a few seconds")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(machine() + "\n")

    rows, what = cifar_rows(args.quick)
    baseline = rows[0][1]
    print(f"CIFAR-10 train pipeline, batch 128, {what}: images/s to a model-ready float batch\n")
    print("| pipeline | img/s | ratio |\n|---|---:|---:|")
    for name, rate in rows:
        print(f"| {name} | {rate:,.0f} | {rate / baseline:.1f}x |")

    rows, what = rmb_rows(args.quick)
    first_base, later_base = rows[0][1], rows[0][2]
    print(f"\nRMB train pipeline, batch 16, {what}, images resized to 32x32\n")
    print("| pipeline | first epoch img/s | ratio | later epochs img/s | ratio |\n|---|---:|---:|---:|---:|")
    for name, first, later in rows:
        first_ratio, later_ratio = first / first_base, later / later_base
        print(f"| {name} | {first:,.0f} | {first_ratio:.1f}x | {later:,.0f} | {later_ratio:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
