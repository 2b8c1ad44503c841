"""`python -m trainlab.data.split SRC DST`: write a seeded, stratified train/valid/test split as files.

SRC holds class folders (SRC/<class>/*.jpg, e.g. RMB_data/{1,100}); DST receives
DST/{train,valid,test}/<class>/ copies, the layout `data=rmb` and `data=imagefolder` read directly.
The split is the same one those datamodules make on the fly for the same fractions and seed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from trainlab.data.imagefolder import class_dirs, scan_class_folders
from trainlab.data.stratified import stratified_split
from trainlab.errors import DataError, TrainlabError

PART_NAMES = ("train", "valid", "test")


def split_folder(src: Path, dst: Path, fractions: Sequence[float], seed: int) -> dict[str, int]:
    """Copy src's images into dst/{train,valid,test}/<class>/; returns the image count per part.

    Written into a temporary sibling first and renamed at the end, so an interrupted split never leaves
    a half-filled dst behind.
    """
    if not src.is_dir():
        raise DataError(f"Source folder {src} does not exist.")
    if dst.exists() and any(dst.iterdir()):
        raise DataError(
            f"Destination {dst} already exists and is not empty: choose a new folder or remove it."
        )
    classes = class_dirs(src)
    if not classes:
        raise DataError(f"{src} has no class subfolders: expected {src}/<class>/<image files>.")
    samples = scan_class_folders(src, classes)
    parts = stratified_split([label for _, label in samples], fractions, seed)
    dst.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        for part_name, indices in zip(PART_NAMES, parts, strict=True):
            for cls in classes:
                (staging / part_name / cls).mkdir(parents=True, exist_ok=True)
            for i in indices:
                path, label = samples[i]
                shutil.copy2(path, staging / part_name / classes[label] / path.name)
        if dst.exists():
            dst.rmdir()
        staging.rename(dst)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {name: len(indices) for name, indices in zip(PART_NAMES, parts, strict=True)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainlab.data.split", description=__doc__.split("\n")[0])
    parser.add_argument("src", type=Path, help="folder of class subfolders, e.g. data/rmb/RMB_data")
    parser.add_argument("dst", type=Path, help="new folder for train/valid/test, e.g. data/rmb/rmb_split")
    parser.add_argument(
        "--split", type=float, nargs=3, default=(0.8, 0.1, 0.1), metavar=("TRAIN", "VAL", "TEST")
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        counts = split_folder(args.src, args.dst, args.split, args.seed)
    except TrainlabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {args.dst}: " + ", ".join(f"{name} {n}" for name, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
