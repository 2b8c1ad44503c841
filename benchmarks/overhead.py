"""Framework overhead: the tutorials' hand-written PyTorch loop against `python -m trainlab`, steps/s.

    python benchmarks/overhead.py           # 5 rounds of 200 steps each way, ~3 minutes on 2 cores
    python benchmarks/overhead.py --quick   # a few seconds (what the test suite runs)

Both train the same network (the tutorials' Tudui CNN) with SGD(lr=0.01) and CrossEntropyLoss on the same
batches: CIFAR-10-format data in a temporary dir, read by trainlab's `data=cifar10` train loader and
augmented by its batch transform (the raw loop calls the same loader and transform, so only the training
loop differs). Both log the loss to TensorBoard every 10 steps (`loss.item()` plus `add_scalar` in the
raw loop; trainlab's defaults: `trainer.log_every_n_steps=10`, its progress bar, epoch metrics, lr logging,
the NaN guard). trainlab runs through the real CLI; each run is a fresh process of its own.

steps/s are read the same way for both, from the TensorBoard event files each run writes: the rate of
every logging interval (10 steps over the wall time between two logged values), so start-up, data set-up
and the first (warm-up) interval are outside the measurement. Runs alternate (raw, trainlab, raw, ...);
the table gives the median interval rate over all runs of each loop.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import REPO, cifar_images, machine, table, write_cifar_format
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from trainlab.data.cifar10 import CIFAR10DataModule
from trainlab.data.transforms import ToTensor
from trainlab.models.tudui import Tudui

BATCH, LR, LOG_EVERY = 64, 0.01, 10


def raw_loop(root: Path, steps: int, log_dir: Path) -> None:
    """The tutorials' loop: zero_grad / backward / step, the loss logged every LOG_EVERY steps."""
    torch.manual_seed(0)
    dm = CIFAR10DataModule(
        root=str(root), batch_size=BATCH, val_size=BATCH, pipeline="batched",
        train_transforms=[ToTensor()], eval_transforms=[ToTensor()],
    )  # fmt: skip
    dm.setup("fit")
    net, loss_fn = Tudui(), nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(net.parameters(), lr=LR)
    writer = SummaryWriter(str(log_dir))
    step = 0
    while step < steps:
        for batch in dm.train_dataloader():
            images, labels = dm.on_after_batch_transfer(batch, 0)
            loss = loss_fn(net(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step % LOG_EVERY == 0:
                writer.add_scalar("train/loss", loss.item(), step)
            if step == steps:
                break
    writer.close()


def run_raw_loop(root: Path, steps: int, log_dir: Path) -> None:
    """raw_loop in a fresh process of its own, like the trainlab run it is compared with."""
    code = (
        "from pathlib import Path; from overhead import raw_loop; "
        f"raw_loop(Path({str(root)!r}), {steps}, Path({str(log_dir)!r}))"
    )
    subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent, check=True)


def trainlab_run(root: Path, steps: int, run_dir: Path) -> None:
    overrides = [
        "experiment=tutorial_cifar10", f"data.root={root}", f"data.val_size={BATCH}",
        f"trainer.max_steps={steps}", f"trainer.log_every_n_steps={LOG_EVERY}",
        "trainer.num_sanity_val_steps=0", "test=false", f"hydra.run.dir={run_dir}",
    ]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "trainlab", *overrides], cwd=REPO, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"trainlab run failed:\n{done.stderr[-3000:]}")


def window_rates(log_dir: Path, tag: str) -> list[float]:
    """steps/s in each logging interval (consecutive logged steps), skipping the first (warm-up) one.

    Per-interval rates, pooled over runs and summarized by their median, are robust to the bursts of
    other load a shared machine has; one mean over a whole run is not.
    """
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    scalars = events.Scalars(tag)[1:]
    return [(b.step - a.step) / (b.wall_time - a.wall_time) for a, b in itertools.pairwise(scalars)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="40 steps, one round")
    parser.add_argument("--steps", type=int, default=200, help="training steps per run")
    parser.add_argument("--rounds", type=int, default=5, help="pairs of runs (raw, trainlab)")
    args = parser.parse_args(argv)
    steps, rounds = (40, 1) if args.quick else (args.steps, args.rounds)
    print(machine())
    raw, ours = [], []  # per round: median interval rate of each loop
    with tempfile.TemporaryDirectory() as tmp:
        images, labels, what = cifar_images(BATCH * (steps + 2) + BATCH, real=False)
        root = write_cifar_format(Path(tmp) / "cifar10", images, labels)
        for r in range(rounds):
            started = time.perf_counter()
            run_raw_loop(root, steps, Path(tmp) / f"raw{r}")
            raw.append(statistics.median(window_rates(Path(tmp) / f"raw{r}", "train/loss")))
            trainlab_run(root, steps, Path(tmp) / f"trainlab{r}")
            events = Path(tmp) / f"trainlab{r}" / "tensorboard"
            ours.append(statistics.median(window_rates(events, "train/loss_step")))
            print(f"round {r + 1}/{rounds}: raw {raw[-1]:.2f} steps/s, trainlab {ours[-1]:.2f} steps/s "
                  f"({time.perf_counter() - started:.0f} s)", file=sys.stderr)  # fmt: skip
    # the machine's speed drifts between runs; a round's two runs are next to each other in time, so the
    # ratio within a round is the fair one, and the median over rounds drops the disturbed ones
    ratio = statistics.median(b / a for a, b in zip(raw, ours, strict=True))
    raw_rate, our_rate = statistics.median(raw), statistics.median(ours)
    print(f"\nTudui, batch {BATCH}, SGD(lr={LR}), {steps} steps per run ({what}), loss logged every "
          f"{LOG_EVERY} steps; median over {rounds} rounds of a raw run then a trainlab run\n")  # fmt: skip
    print(
        table(
            ["loop", "steps/s", "ms/step", "ratio to raw (median per round)"],
            [
                ["raw PyTorch loop (tutorial)", f"{raw_rate:.2f}", f"{1000 / raw_rate:.2f}", "1.000x"],
                [
                    "`python -m trainlab` (defaults)",
                    f"{our_rate:.2f}",
                    f"{1000 / our_rate:.2f}",
                    f"{ratio:.3f}x",
                ],
            ],
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
