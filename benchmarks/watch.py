"""What `callbacks=watch` costs: training steps per second of the default recipe with and without it.

    python benchmarks/watch.py           # 3 interleaved rounds of 200 steps each
    python benchmarks/watch.py --quick   # 1 round of 40 steps (what the test suite runs)

The default recipe (`python -m trainlab`: digits + tudui, AdamW, TensorBoard) built as a run builds it,
with `callbacks=default` (the baseline) and `callbacks=watch` (its default cadence: every
trainer.log_every_n_steps, no histograms) and, for comparison, `callbacks.watch.histogram_every_n_steps=10`.
Steps per second are timed from one training batch's start to the next within an epoch (every hook
included, validation left out), after 5 untimed warm-up steps; the rounds alternate the settings and the
median of each is kept.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lightning.pytorch as L
from common import machine
from hydra import compose, initialize_config_module

SETTINGS = {
    "callbacks=default (baseline)": ["callbacks=default"],
    "callbacks=watch": ["callbacks=watch"],
    "callbacks=watch, histograms every 10 steps": [
        "callbacks=watch",
        "callbacks.watch.histogram_every_n_steps=10",
    ],
}


class StepClock(L.Callback):
    """Seconds between consecutive training-batch starts of the same epoch, after `warmup` of them."""

    def __init__(self, warmup: int = 5) -> None:
        self.warmup = warmup
        self.gaps: list[float] = []
        self._last: tuple[int, float] | None = None

    def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
        now = time.perf_counter()
        same_epoch = self._last is not None and self._last[0] == trainer.current_epoch
        if same_epoch and trainer.global_step > self.warmup:
            self.gaps.append(now - self._last[1])
        self._last = (trainer.current_epoch, now)


def steps_per_second(overrides: list[str], steps: int, tmp: Path) -> float:
    from trainlab.training.train import preflight

    with initialize_config_module("trainlab.conf", version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                *overrides,
                f"paths.output_dir={tmp}",
                f"paths.data_dir={tmp / 'data'}",
                f"paths.mlflow_dir={tmp / 'mlflow'}",
                f"trainer.max_steps={steps + 6}",
                "trainer.max_epochs=-1",
                "trainer.enable_progress_bar=false",
                "test=false",
            ],
        )
    datamodule, trainer, module = preflight(cfg)
    clock = StepClock()
    trainer.callbacks.append(clock)
    trainer.fit(module, datamodule=datamodule)
    return 1.0 / statistics.median(clock.gaps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 40 steps")
    args = parser.parse_args(argv)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    rounds, steps = (1, 40) if args.quick else (3, 200)
    rates: dict[str, list[float]] = {name: [] for name in SETTINGS}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(rounds):
            for j, (name, overrides) in enumerate(SETTINGS.items()):
                rates[name].append(steps_per_second(overrides, steps, Path(tmp) / f"r{i}-{j}"))
    print(machine() + "\n")
    print(
        f"Default recipe (digits + tudui, AdamW, TensorBoard), median of {rounds} round(s) of {steps} steps"
    )
    print()
    print("| callbacks | steps/s | ratio |\n|---|---:|---:|")
    base = statistics.median(next(iter(rates.values())))
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"| {name} | {rate:.1f} | {rate / base:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
