"""Lightning's ModelCheckpoint with what an exact resume needs.

- A step-triggered save (`every_n_train_steps`) that lands on an epoch's last batch waits until the
  epoch's validation has run and is saved at the epoch's end: saved before it, the checkpoint resumes
  past that validation, and the epoch's val/* values and best-checkpoint bookkeeping are never made.
- A checkpoint of another run dir restores none of its best-k bookkeeping (Lightning keeps its
  `best_model_path`, so the new run would test the other dir's file): the new run starts its own.
- File names count epochs from 1, as train.log and the progress bar do: `epoch002-...` holds the
  second epoch.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as L
from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint

from trainlab.compat import on_last_batch_of_epoch, save_model_checkpoint_now, step_trigger_due


class ModelCheckpoint(LightningModelCheckpoint):
    """lightning.pytorch.callbacks.ModelCheckpoint's arguments and behaviour, save for the above."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._save_at_epoch_end = False

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if step_trigger_due(self, trainer) and on_last_batch_of_epoch(trainer):
            self._save_at_epoch_end = True
            return
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._save_at_epoch_end:
            self._save_at_epoch_end = False
            save_model_checkpoint_now(self, trainer)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("dirpath", self.dirpath) == self.dirpath:
            super().load_state_dict(state_dict)

    def format_checkpoint_name(
        self,
        metrics: dict[str, Any],
        filename: str | None = None,
        ver: int | None = None,
        prefix: str | None = None,
    ) -> str:
        if "epoch" in metrics:
            metrics = {**metrics, "epoch": metrics["epoch"] + 1}
        return super().format_checkpoint_name(metrics, filename=filename, ver=ver, prefix=prefix)
