"""A progress bar that redraws by the clock, not by the step; no bar at all when not in a terminal.

Lightning's default bar (Rich when installed) redraws from a background thread ten times a second and
formats its metrics every step; on a 2-core machine that thread takes a core from the model's two compute
threads, which then wait for each other. This bar draws in the training thread, at most every
`refresh_s` seconds, and at the end of each epoch and stage, so it costs nothing measurable per step.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import lightning.pytorch as L
from lightning.pytorch.callbacks import TQDMProgressBar

from trainlab.compat import GatedTQDMProgressBar

log = logging.getLogger(__name__)


class ThrottledProgressBar(GatedTQDMProgressBar, TQDMProgressBar):
    """In a terminal: the bar, redrawn at most every `refresh_s` seconds. Otherwise (output to a file or
    a pipe, a cluster job) no bar, whose redraws would fill the log: the epoch lines trainlab logs, plus a
    heartbeat line every `heartbeat_s` seconds within a long epoch."""

    def __init__(
        self, refresh_s: float = 0.5, heartbeat_s: float = 60.0, interactive: bool | None = None
    ) -> None:
        super().__init__(refresh_rate=1)
        self.refresh_s = refresh_s
        self.heartbeat_s = heartbeat_s
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        if not self.interactive:
            self.disable()
        self._last_draw = 0.0
        self._last_beat, self._beat_batch = 0.0, 0

    def should_redraw(self, current: int, total: int) -> bool:
        if not self.is_enabled:
            return False
        now = time.monotonic()
        if current == total or now - self._last_draw >= self.refresh_s:
            self._last_draw = now
            return True
        return False

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self.interactive or not trainer.is_global_zero:
            return
        now = time.monotonic()
        if now - self._last_beat < self.heartbeat_s:
            return
        total = self.total_train_batches
        log.info(
            "epoch %d: batch %d of %s (%.1f batches/s over the last %.0f s)",
            trainer.current_epoch + 1,
            batch_idx + 1,
            total if isinstance(total, int) else "?",
            (batch_idx + 1 - self._beat_batch) / (now - self._last_beat),
            now - self._last_beat,
        )
        self._last_beat, self._beat_batch = now, batch_idx + 1

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        self._last_beat, self._beat_batch = time.monotonic(), 0
        super().on_train_epoch_start(trainer, *args)
        # epochs counted from 1 of max_epochs, as in train.log and the checkpoint file names
        total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else "?"
        self.train_progress_bar.set_description(f"Epoch {trainer.current_epoch + 1}/{total}")
