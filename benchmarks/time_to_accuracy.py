"""Time to accuracy: `experiment=cifar10_fast` against the tutorials' CIFAR-10 recipe, on the same data.

    python benchmarks/time_to_accuracy.py           # the fast recipe, then the tutorial for as long
    python benchmarks/time_to_accuracy.py --quick   # generated images, one short epoch each (the tests)

Data: ../shared/data/cifar10-train (the 50,000 CIFAR-10 training images as JPEGs) through
`data=cifar10_jpeg`: 45,000 to train on, a stratified 5,000 held out for validation, the same split for
both recipes. Without ../shared (or with --quick) a generated folder of random images stands in, which
tests the mechanics only.

Both recipes run through the real CLI. Wall time counts from launching the process, so start-up and
decoding the images are included; each epoch's validation accuracy and the moment it was logged come
from the run's TensorBoard events. The tutorial recipe (Tudui, SGD lr 0.01, batch 64, no augmentation,
10 epochs) gets the wall-clock budget the fast recipe took (`trainer.max_time`; at most what is left of
the benchmark's 10 minutes), so the table compares what each reaches in (about) equal time; the epoch the
time limit cut short is validated as it stands and marked. `--tutorial-epochs N` runs it to N epochs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import REPO, SHARED, machine, table
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
TARGET = 0.86
TOTAL_S = 570  # the default run's budget: under 10 minutes in all
STARTUP_S = 15  # launching the CLI and decoding the images, before max_time's clock starts
MIN_TUTORIAL_S = 60  # an epoch of the tutorial recipe and its validation take ~35 s here


def generated_folder(root: Path, per_class: int) -> Path:
    rng = np.random.default_rng(0)
    for name in CLASSES:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(image).save(root / name / f"{i:04d}.jpg", quality=75)
    return root


def run(recipe: str, root: Path, run_dir: Path, extra: list[str]) -> list[tuple[str, float, float]]:
    """(epoch, seconds since launch, val/acc) for every validated epoch of one CLI run."""
    overrides = [
        f"experiment={recipe}", "data=cifar10_jpeg", f"data.root={root}", "test=false",
        f"data.cache_dir={run_dir.parent / 'decoded'}",  # the second run reads the first one's decode
        "trainer.enable_progress_bar=false", f"hydra.run.dir={run_dir}", *extra,
    ]  # fmt: skip
    launched = time.time()
    command = [sys.executable, "-m", "trainlab", *overrides]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{recipe} failed:\n{done.stderr[-3000:]}")
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    # validation runs once per epoch (the sanity check is not logged); an epoch that trainer.max_time
    # cut short ends at fewer steps than the full epochs before it
    scalars = events.Scalars("val/acc")
    per_epoch = scalars[0].step + 1 if scalars else 0  # logged at the epoch's last step, 0-based
    return [
        (f"{i + 1}" if s.step + 1 == (i + 1) * per_epoch else f"{i + 1} (cut by the time limit)",
         s.wall_time - launched, s.value)
        for i, s in enumerate(scalars)
    ]  # fmt: skip


def first_reaching(rows: list[tuple[str, float, float]], target: float) -> str:
    hit = next(((epoch, seconds) for epoch, seconds, acc in rows if acc >= target), None)
    return f"epoch {hit[0]}, {hit[1]:.0f} s" if hit else "not reached"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="generated images, one short epoch each")
    parser.add_argument("--tutorial-epochs", type=int, default=None, help="run the tutorial N epochs")
    args = parser.parse_args(argv)
    print(machine())
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        real = (SHARED / "cifar10-train").is_dir() and not args.quick
        root = SHARED / "cifar10-train" if real else generated_folder(Path(tmp) / "images", 40)
        what = "50,000 CIFAR-10 training images (45,000 train / 5,000 held-out val)" if real else (
            "400 generated random images (mechanics only)"
        )  # fmt: skip
        # one epoch of 6 batches: one-cycle needs a few steps to have a warm-up and a decay phase
        quick = ["trainer.max_epochs=1", "data.batch_size=64"] if args.quick else []
        fast = run("cifar10_fast", root, Path(tmp) / "fast", quick)
        fast_s = fast[-1][1] if fast else 60.0
        budget = min(fast_s, TOTAL_S - (time.time() - started))  # as long, within the 10 minutes
        if args.quick or args.tutorial_epochs or budget >= MIN_TUTORIAL_S:
            limit = (
                [f"trainer.max_epochs={args.tutorial_epochs}"]
                if args.tutorial_epochs
                else [f"+trainer.max_time={{seconds: {int(budget - STARTUP_S)}}}"]
            )
            tutorial = run("tutorial_cifar10", root, Path(tmp) / "tutorial", quick or limit)
        else:
            tutorial = []
            print(f"(the 10 minutes leave {budget:.0f} s for the tutorial recipe, too little for an epoch; "
                  "run with --tutorial-epochs 10 for it)")  # fmt: skip

    print(f"\nCIFAR-10 validation accuracy by wall time since launch; {what}\n")
    rows = [["`experiment=cifar10_fast`", e, f"{s:.0f}", f"{a:.4f}"] for e, s, a in fast]
    rows += [["`experiment=tutorial_cifar10`", e, f"{s:.0f}", f"{a:.4f}"] for e, s, a in tutorial]
    print(table(["recipe", "epoch", "wall s", "val/acc"], rows))
    best = max((a for _, _, a in tutorial), default=0.0)
    print(f"\n{TARGET:.0%} reached by cifar10_fast: {first_reaching(fast, TARGET)}; "
          f"tutorial recipe's best in the same time: {best:.4f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
