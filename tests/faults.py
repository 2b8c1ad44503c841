"""Faults injected into real CLI runs, as callbacks: `+callbacks.fault={_target_:faults.X,...}`.

The CLI subprocess imports this module because the tests put tests/ on its PYTHONPATH (see `fault_env`).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
from lightning.pytorch.callbacks import Callback

from trainlab.data.base import Splits
from trainlab.data.digits import DigitsDataModule

TESTS_DIR = Path(__file__).resolve().parent

# A command started with `&` by a non-interactive shell inherits SIGINT as *ignored*, which survives exec
# and keeps Python (and trainlab) from handling Ctrl+C; a user's terminal has the default. So runs that a
# test interrupts start from a tiny exec wrapper that restores it, whatever started the test.
AS_FROM_A_TERMINAL = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.executable, [sys.executable, '-m', 'trainlab', *sys.argv[1:]])"
)


def fault_env() -> dict[str, str]:
    """Environment for a CLI subprocess that can import this module."""
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")]))}


def fault(name: str, **options: Any) -> str:
    """The override that adds fault `name` (a class below) with `options`."""
    values = ",".join(f"{key}:{value}" for key, value in options.items())
    return f"+callbacks.fault={{_target_:faults.{name}{',' + values if values else ''}}}"


class SignalAtStep(Callback):
    """The process sends itself signal `name` while optimizer step `step` runs (after its forward pass)."""

    def __init__(self, step: int, name: str = "SIGTERM") -> None:
        self.step = step
        self.signum = signal.Signals[name]

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: Any) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


class NanBatch(Callback):
    """The images of the n-th training batches (0-based, counted over the run) become NaN."""

    def __init__(self, batches: list[int]) -> None:
        self.batches = set(batches)
        self.seen = 0

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, i: int
    ) -> None:
        if self.seen in self.batches:
            batch[0].fill_(torch.nan)
        self.seen += 1


class MarkTraining(Callback):
    """Touches `path` once training has begun, for tests that signal a run from outside."""

    def __init__(self, path: str, step: int = 1) -> None:
        self.path = Path(path)
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if trainer.global_step >= self.step and not self.path.exists():
            self.path.touch()


class _KillsItsWorker(torch.utils.data.Dataset):
    def __init__(self, dataset: torch.utils.data.Dataset, crash_at: int) -> None:
        self.dataset, self.crash_at, self.labels = dataset, crash_at, dataset.labels

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Any) -> Any:
        index = key if isinstance(key, int) else key[0]
        if index == self.crash_at and torch.utils.data.get_worker_info() is not None:
            os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's OOM killer would
        return self.dataset[key]


class DigitsWithCrashingWorker(DigitsDataModule):
    """data._target_=faults.DigitsWithCrashingWorker +data.crash_at=N: the worker loading sample N dies."""

    def __init__(self, crash_at: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.crash_at = crash_at

    def load_splits(self) -> Splits:
        splits = super().load_splits()
        splits.train = _KillsItsWorker(splits.train, self.crash_at)
        return splits


class CrashAtStep(Callback):
    """The run dies (an exception, as from a crash or a lost node) once `step` optimizer steps are done,
    before the next one: what is left is whatever checkpoint the run wrote before."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, i: int
    ) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError(f"fault: crashed after step {self.step}")


class RecordLR(Callback):
    """Appends `{"step": N, "lr": {group: lr}}` per training step to <run dir>/lr.jsonl: the lr each step
    trains with, read before the step (the optimizer's param groups, as the step uses them)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, i: int
    ) -> None:
        rates = {
            str(group.get("name") or index): float(group["lr"])
            for optimizer in trainer.optimizers
            for index, group in enumerate(optimizer.param_groups)
        }
        with self.path.open("a") as handle:
            handle.write(json.dumps({"step": trainer.global_step, "lr": rates}) + "\n")


class CrashInValidation(Callback):
    """The run dies during the validation of epoch `epoch` (0-based), before that epoch's checkpoints."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and trainer.current_epoch == self.epoch:
            raise RuntimeError(f"fault: crashed in the validation of epoch {self.epoch + 1}")


class SignalInStage(Callback):
    """The process sends itself signal `signame` at the start of `stage`: `fit` (before the sanity check,
    so outside the graceful stop of training), `test` (its first batch) or `test_end` (testing done)."""

    def __init__(self, stage: str, signame: str = "SIGTERM") -> None:
        self.stage = stage
        self.signum = signal.Signals[signame]

    def _send(self, stage: str) -> None:
        if stage == self.stage:
            os.kill(os.getpid(), self.signum)
            time.sleep(1)  # the handler runs between bytecodes: in the next instruction at the latest

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._send("fit")

    def on_test_batch_start(self, *args: Any) -> None:
        self._send("test")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._send("test_end")


class KillRankAtStep(Callback):
    """Under DDP, rank `rank` dies with SIGKILL (as the OOM killer does it) at optimizer step `step`."""

    def __init__(self, step: int, rank: int = 1) -> None:
        self.step, self.rank = step, rank

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_rank == self.rank and trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class MemoryLimitedNet(torch.nn.Module):
    """A linear classifier that runs out of memory, as torch's CPU allocator reports it, on training
    batches larger than `max_batch` (evaluation batches always fit), so the batch-size finder has a
    boundary to find on any machine."""

    def __init__(self, num_classes: int, in_channels: int, image_size: int, max_batch: int) -> None:
        super().__init__()
        self.max_batch = max_batch
        self.linear = torch.nn.Linear(in_channels * image_size * image_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and len(x) > self.max_batch:
            raise RuntimeError(
                f"DefaultCPUAllocator: can't allocate memory: you tried to allocate {len(x)} images"
            )
        return self.linear(x.flatten(1))
