"""What the benchmarks share: the machine line, CIFAR-10 data in its official format, markdown tables."""

from __future__ import annotations

import os
import pickle
import platform
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    model = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")), cpu)
    return (
        f"machine: {model}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}"
    )


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def cifar_images(count: int, real: bool) -> tuple[np.ndarray, list[int], str]:
    """(N, 32, 32, 3) uint8 images and labels: the shared real CIFAR-10 images when present and `real`,
    else random ones (for speed, pixel values do not matter)."""
    folder = SHARED / "cifar10-train"
    if folder.is_dir() and real:
        files = sorted(folder.glob("*/*.jpg"))[:: max(1, 50_000 // count)][:count]
        classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
        images = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
        return images, [classes.index(f.parent.name) for f in files], f"{len(files)} real CIFAR-10 images"
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
    return images, [int(i % 10) for i in range(count)], f"{count} random 32x32 images"


def write_cifar_format(root: Path, images: np.ndarray, labels: Sequence[int]) -> Path:
    """root/cifar-10-batches-py as the official release: 5 training batches, a (tiny) test batch, meta."""
    batch_dir = root / "cifar-10-batches-py"
    batch_dir.mkdir(parents=True)
    chunks = np.array_split(np.arange(len(images)), 5)
    for i, idx in enumerate(chunks, start=1):
        data = images[idx].transpose(0, 3, 1, 2).reshape(len(idx), 3072)
        with (batch_dir / f"data_batch_{i}").open("wb") as f:
            pickle.dump({"labels": [labels[j] for j in idx], "data": data}, f)
    with (batch_dir / "test_batch").open("wb") as f:
        test = images[:10].transpose(0, 3, 1, 2).reshape(10, 3072)
        pickle.dump({"labels": list(labels[:10]), "data": test}, f)
    with (batch_dir / "batches.meta").open("wb") as f:
        pickle.dump({"label_names": [str(i) for i in range(10)]}, f)
    return root


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table; columns after the first are right-aligned (numbers)."""
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
