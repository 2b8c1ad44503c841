"""Preflight benchmark: what the checks before the first training step cost.

    python benchmarks/preflight.py           # the 50,000 CIFAR-10 JPEGs of ../shared when present
    python benchmarks/preflight.py --quick   # 300 generated JPEGs, one start-up (what the test suite runs)

Data files: trainlab's header check (`trainlab.data.datasets.header_problem`, the first 12 bytes of each
file) against opening every file with PIL (`Image.open`, which parses the whole header), on the same
files in the same run, after one untimed pass that brings them into the page cache (each timed twice,
the faster kept). Start-up: the default recipe (`python -m trainlab`, digits + tudui) built as a run
builds it; "checks" is the time preflight adds (data files, keys, run length, monitors and the rehearsal
step of each split, as logged by the run), "start-up" everything from the config to the first step. The
first start-up in a process is what `python -m trainlab` pays (its first forward and backward pass also
set up the kernels the first training step would otherwise set up); later ones show the checks alone.
"""

from __future__ import annotations

import argparse
import logging
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import SHARED, machine
from hydra import compose, initialize_config_module
from PIL import Image

from trainlab.data.datasets import header_problem


def image_files(quick: bool, tmp: Path) -> tuple[list[Path], str]:
    folder = SHARED / "cifar10-train"
    if folder.is_dir() and not quick:
        files = sorted(folder.glob("*/*.jpg"))
        return files, f"{len(files):,} CIFAR-10 JPEGs (../shared)"
    rng = np.random.default_rng(0)
    count = 300 if quick else 5_000
    files = []
    for i in range(count):
        path = tmp / f"{i:05d}.jpg"
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path, quality=75)
        files.append(path)
    return files, f"{count:,} generated 32x32 JPEGs"


def pil_open(path: Path) -> None:
    with Image.open(path):
        pass


def seconds(check, files: list[Path]) -> float:
    started = time.perf_counter()
    for path in files:
        check(path)
    return time.perf_counter() - started


class Checked(logging.Handler):
    """Reads the seconds from the run's `preflight: ... checked in X s` log line."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: float | None = None

    def emit(self, record: logging.LogRecord) -> None:
        found = re.search(r"preflight: .* checked in (\d+\.\d+) s", record.getMessage())
        if found:
            self.seconds = float(found.group(1))


def start_up(tmp: Path) -> tuple[float, float]:
    """(preflight checks, whole start-up) seconds of the default recipe."""
    from trainlab.training.train import preflight

    with initialize_config_module("trainlab.conf", version_base="1.3"):
        overrides = [
            f"paths.output_dir={tmp / 'run'}",
            f"paths.data_dir={tmp / 'data'}",
            f"paths.mlflow_dir={tmp / 'mlflow'}",
            "logger=none",
        ]
        cfg = compose("train", overrides=overrides)
    handler = Checked()
    logging.getLogger("trainlab").addHandler(handler)
    logging.getLogger("trainlab").setLevel(logging.INFO)
    started = time.perf_counter()
    preflight(cfg)
    total = time.perf_counter() - started
    logging.getLogger("trainlab").removeHandler(handler)
    return handler.seconds or 0.0, total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="300 generated files, one start-up")
    args = parser.parse_args(argv)
    print(machine() + "\n")
    with tempfile.TemporaryDirectory() as tmp:
        files, what = image_files(args.quick, Path(tmp))
        seconds(header_problem, files)  # into the page cache
        ours = min(seconds(header_problem, files) for _ in range(2))
        pil = min(seconds(pil_open, files) for _ in range(2))
        print(f"Data file check, {what}\n")
        print("| check | seconds | files/s | ratio |\n|---|---:|---:|---:|")
        print(f"| PIL Image.open (baseline) | {pil:.2f} | {len(files) / pil:,.0f} | 1.0x |")
        print(f"| trainlab header check | {ours:.2f} | {len(files) / ours:,.0f} | {pil / ours:.1f}x |")
        runs = [start_up(Path(tmp) / f"s{i}") for i in range(2 if args.quick else 6)]
        later = (statistics.median(r[0] for r in runs[1:]), statistics.median(r[1] for r in runs[1:]))
        print("\nDefault recipe (data=digits model=tudui): the first start-up in a process, and the median")
        print(f"of {len(runs) - 1} later one(s)\n")
        print("| start-up | preflight checks s | whole start-up s | checks' share |\n|---|---:|---:|---:|")
        for name, (checks, total) in (("first", runs[0]), ("later", later)):
            print(f"| {name} | {checks:.2f} | {total:.2f} | {checks / total:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
