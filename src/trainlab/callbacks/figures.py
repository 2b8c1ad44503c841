"""The tutorials' plots for every run: curves, confusion matrices and sample predictions.

To TensorBoard (IMAGES tab), every `every_n_epochs` validation: `val/confusion_matrix` and
`val/predictions` (the first `num_samples` validation images titled with the predicted and true class,
or for sequence tasks the decoded and true strings);
after testing, `test/confusion_matrix`. Into the run dir when fitting ends: `curves.png`, and
`confusion_matrix.png` and `predictions.png` of the last validation epoch; `test_confusion_matrix.png`
after testing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as L
import matplotlib.pyplot as plt
import torch
from lightning.pytorch.callbacks import Callback
from matplotlib.figure import Figure

from trainlab.loggers.plots import (
    confusion_matrix_figure,
    curves_figure,
    prediction_grid_figure,
    save_figure,
)
from trainlab.loggers.tensorboard import log_figure, summary_writers


class RunFigures(Callback):
    def __init__(self, output_dir: str, every_n_epochs: int = 1, num_samples: int = 16) -> None:
        if every_n_epochs < 1 or num_samples < 0:
            raise ValueError(
                f"callbacks.figures: every_n_epochs={every_n_epochs} must be >= 1 and "
                f"num_samples={num_samples} >= 0"
            )
        self.output_dir = Path(output_dir)
        self.every_n_epochs = every_n_epochs
        self.num_samples = num_samples
        self._samples: dict[str, Any] | None = None

    def _due(self, trainer: L.Trainer) -> bool:
        return not trainer.sanity_checking and (trainer.current_epoch + 1) % self.every_n_epochs == 0

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Keep the first validation images with their predictions (the same images every epoch)."""
        if batch_idx != 0 or dataloader_idx != 0 or not self.num_samples or trainer.sanity_checking:
            return
        if not trainer.is_global_zero:
            return
        images, labels = batch[0][: self.num_samples], batch[1][: self.num_samples]
        with torch.no_grad():
            outputs = pl_module.eval_outputs(images)
        predicted, confidence = pl_module.loss.describe(outputs, pl_module.class_names)
        self._samples = {
            "epoch": trainer.current_epoch,
            "images": images.detach().cpu(),
            "predicted": predicted,
            "probability": confidence,
            "labels": pl_module.loss.describe_labels(labels, pl_module.class_names),
        }

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Images for TensorBoard only: drawing costs, so nothing is drawn without a writer to take it."""
        if not self._due(trainer) or not any(summary_writers(trainer)):
            return
        step = trainer.global_step
        for tag, figure in (
            ("val/confusion_matrix", self._confusion_figure(pl_module)),
            ("val/predictions", self._predictions_figure(pl_module)),
        ):
            if figure is not None:
                log_figure(trainer, tag, figure, step)
                plt.close(figure)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        save_figure(curves_figure(pl_module.history), self.output_dir / "curves.png")
        for name, figure in (
            ("confusion_matrix.png", self._confusion_figure(pl_module)),
            ("predictions.png", self._predictions_figure(pl_module)),
        ):
            if figure is not None:
                save_figure(figure, self.output_dir / name)

    def _confusion_figure(self, pl_module: L.LightningModule) -> Figure | None:
        matrix = pl_module.confusion_matrix("val")
        validated = pl_module.history.epochs.get("val")
        if matrix is None or not validated:
            return None
        title = f"validation, epoch {int(validated[-1]['epoch']) + 1}"
        return confusion_matrix_figure(matrix, pl_module.class_names, title)

    def _predictions_figure(self, pl_module: L.LightningModule) -> Figure | None:
        samples = self._samples
        if samples is None:
            return None
        return prediction_grid_figure(
            samples["images"],
            samples["predicted"],
            samples["labels"],
            samples["probability"],
            f"validation predictions, epoch {samples['epoch'] + 1}",
        )

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        matrix = pl_module.confusion_matrix("test")
        if matrix is None or not trainer.is_global_zero:
            return
        figure = confusion_matrix_figure(matrix, pl_module.class_names, "test")
        log_figure(trainer, "test/confusion_matrix", figure, trainer.global_step)
        save_figure(figure, self.output_dir / "test_confusion_matrix.png")
