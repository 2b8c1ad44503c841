"""SIGTERM and SIGINT end a run at a step boundary, with a checkpoint it resumes from.

A cluster's time limit sends SIGTERM, a user presses Ctrl+C. Python's default (KeyboardInterrupt raised
wherever the interpreter happens to be, or death by SIGTERM) loses every step since the last epoch's
checkpoint. Here a signal only sets a flag: the step in flight finishes (and a validation in flight, so
the epoch's own checkpoint is written), then `last.ckpt` is saved as a mid-epoch checkpoint and the run
exits with 128 + the signal's number before the next step. `ckpt_path=last` continues from that next
step, bit for bit.
A signal during an epoch's last batch or its validation is saved once the epoch has ended (validated,
its own checkpoints written), so the resume starts the next epoch and loses none of that epoch's values.
A second Ctrl+C stops at once, as users expect from a stuck process.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import lightning.pytorch as L
import torch
from lightning.pytorch.callbacks import Checkpoint

from trainlab.compat import on_last_batch_of_epoch
from trainlab.signals import HANDLED_SIGNALS, note

log = logging.getLogger(__name__)


class TrainingInterrupted(SystemExit):
    """The run stopped on a signal after saving; the exit code is 128 + signal (143 SIGTERM, 130 SIGINT)."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(128 + signum)
        self.signum = signum
        self.message = message

    def __str__(self) -> str:
        return self.message


class CheckpointOnSignal(Checkpoint):
    """Installed while fitting; `checkpoint` is the file a resume with `ckpt_path=last` reads.

    A Lightning `Checkpoint`, so Lightning runs its epoch-end hook after the ModelCheckpoints' (which
    come first in the callback list): an epoch-end save here holds their updated best-k bookkeeping.
    """

    def __init__(self, checkpoint: str | Path) -> None:
        self.checkpoint = Path(checkpoint)
        self.received: int | None = None
        self._saved_after = 0  # the signal after which last.ckpt was saved
        self._previous: dict[int, Any] = {}

    # Lightning registers its own SIGTERM handler just before the first validation or training step
    # (and would raise SIGTERMException in the middle of a validation); replacing it there keeps ours.
    def on_sanity_check_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._install()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._install()

    def _install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread (e.g. not in a notebook worker)
        for signum in HANDLED_SIGNALS:
            if signal.getsignal(signum) is signal.SIG_IGN:
                continue  # started in the background (`cmd &`): Ctrl+C in the terminal is not for this run
            if signal.getsignal(signum) != self._note_signal:
                self._previous[signum] = signal.signal(signum, self._note_signal)

    def _note_signal(self, signum: int, frame: FrameType | None) -> None:
        note(signum)
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl+C: stop now, without the checkpoint
        self.received = signum
        log.warning(
            "received %s: finishing this step, then saving %s and stopping (Ctrl+C again to stop now)",
            signal.Signals(signum).name,
            self.checkpoint,
        )

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        signum = self._signal_on_any_rank(trainer)
        if signum and not on_last_batch_of_epoch(trainer):
            trainer.save_checkpoint(self.checkpoint)  # exactly where ModelCheckpoint saves a step's state
            self._saved_after = signum

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """A signal in the last batch or the validation: save the ended epoch, validated."""
        signum = self._signal_on_any_rank(trainer)
        if signum and not self._saved_after:
            trainer.save_checkpoint(self.checkpoint)
            self._saved_after = signum

    # The run stops when the next step would begin: by then Lightning has written this step's logs, and
    # at an epoch's end it has also validated and written the epoch's own checkpoint, so nothing is lost.
    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, i: int
    ) -> None:
        if self._saved_after:
            raise self.interrupted(trainer, self._saved_after, saved=True)

    @property
    def saved(self) -> bool:
        """Whether this callback saved the checkpoint for the signal it received."""
        return bool(self._saved_after)

    def interrupted(self, trainer: L.Trainer, signum: int, saved: bool) -> TrainingInterrupted:
        saved_text = f"saved {self.checkpoint}" if saved else f"the last checkpoint is {self.checkpoint}"
        name = signal.Signals(signum).name
        if trainer.max_epochs is not None and 0 <= trainer.max_epochs <= trainer.current_epoch:
            return TrainingInterrupted(  # the signal came in the last epoch's end: training is complete
                signum,
                f"stopped by {name} after the last epoch ({trainer.max_epochs}), step {trainer.global_step}, "
                f"before the test; {saved_text}. "
                f"python -m trainlab.eval ckpt_path={self.checkpoint} tests it.",
            )
        where = f"epoch {trainer.current_epoch + 1}, step {trainer.global_step}"
        return TrainingInterrupted(
            signum,
            f"stopped by {name} at {where}; {saved_text}. Resume with the same "
            f"command plus hydra.run.dir={self.checkpoint.parent.parent} ckpt_path=last.",
        )

    def _signal_on_any_rank(self, trainer: L.Trainer) -> int:
        """Every rank must stop at the same step; one flag reduced over ranks (nothing to do on one)."""
        signum = self.received or 0
        if trainer.world_size == 1 or not torch.distributed.is_initialized():
            return signum
        flag = torch.tensor(signum, device=trainer.strategy.root_device)
        return int(trainer.strategy.reduce(flag, reduce_op="max").item())

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, error: BaseException) -> None:
        self._restore()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._restore()

    def _restore(self) -> None:
        for signum, previous in self._previous.items():
            if signal.getsignal(signum) == self._note_signal:
                signal.signal(signum, previous)
        self._previous.clear()
