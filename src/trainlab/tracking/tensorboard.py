"""TensorBoard extras beyond scalars (Lightning's self.log only handles scalars)."""

from __future__ import annotations

import lightning.pytorch as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger


def log_histogram(module: L.LightningModule, tag: str, values: torch.Tensor) -> None:
    """Add a histogram at the current global step to every TensorBoard logger of the run (rank 0)."""
    if not module.trainer.is_global_zero:
        return
    for logger in module.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_histogram(tag, values.float().cpu(), global_step=module.global_step)
