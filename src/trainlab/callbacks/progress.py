"""A progress bar that redraws by the clock, not by the step.

Lightning's default bar (Rich when installed) redraws from a background thread ten times a second and
formats its metrics every step; on a 2-core machine that thread takes a core from the model's two compute
threads, which then wait for each other. This bar draws in the training thread, at most every
`refresh_s` seconds, and at the end of each epoch and stage, so it costs nothing measurable per step.
"""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as L
from lightning.pytorch.callbacks import TQDMProgressBar

from trainlab.compat import GatedTQDMProgressBar


class ThrottledProgressBar(GatedTQDMProgressBar, TQDMProgressBar):
    def __init__(self, refresh_s: float = 0.5) -> None:
        super().__init__(refresh_rate=1)
        self.refresh_s = refresh_s
        self._last_draw = 0.0

    def should_redraw(self, current: int, total: int) -> bool:
        if not self.is_enabled:
            return False
        now = time.monotonic()
        if current == total or now - self._last_draw >= self.refresh_s:
            self._last_draw = now
            return True
        return False

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        # epochs counted from 1 of max_epochs, as in train.log and the checkpoint file names
        total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else "?"
        self.train_progress_bar.set_description(f"Epoch {trainer.current_epoch + 1}/{total}")
