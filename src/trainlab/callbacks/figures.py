"""The tutorials' plots for every run: curves, confusion matrices and sample predictions.

To TensorBoard (IMAGES tab), every `every_n_epochs` validation: `val/confusion_matrix` and
`val/predictions` (`num_samples` validation images titled with the predicted and true class: every
class's first image before any class's second, and the most confident mistake; for sequence tasks the
first images with the decoded and true strings);
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
from trainlab.loggers.report import log_figure, takes_figures


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
        self._picks: dict[int, list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = {}
        self._mistake: tuple[float, torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._first: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def _due(self, trainer: L.Trainer) -> bool:
        return not trainer.sanity_checking and (trainer.current_epoch + 1) % self.every_n_epochs == 0

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._picks: dict[int, list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = {}
            self._mistake: tuple[float, torch.Tensor, torch.Tensor, torch.Tensor] | None = None
            self._first: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Pick the grid's images as validation runs, from the outputs it computed anyway: the first
        images of each class in turn (for a classification task; a sequence task's first images), and the
        wrong prediction with the highest probability."""
        if (
            dataloader_idx != 0
            or not self.num_samples
            or trainer.sanity_checking
            or not trainer.is_global_zero
        ):
            return
        if not isinstance(outputs, torch.Tensor):
            return
        images, labels = batch[0].detach(), batch[1].detach()
        if labels.ndim != 1:  # label sequences: the first images, as they come
            if self._first is None:
                n = self.num_samples
                self._first = (images[:n].cpu(), labels[:n].cpu(), outputs[:n].float().cpu())
            return
        per_class = -(-self.num_samples // max(pl_module.num_classes, 1))
        for i, label in enumerate(labels.tolist()):  # only the picked images leave the device
            picked = self._picks.setdefault(label, [])
            if len(picked) < per_class:
                picked.append((images[i].cpu(), labels[i].cpu(), outputs[i].float().cpu()))
        confidence, predicted = pl_module.loss.probabilities(outputs.float()).max(dim=1)
        confidence = torch.where(predicted != labels, confidence, -1.0)
        worst = int(confidence.argmax())
        score = float(confidence[worst])  # -1: no mistake in this batch
        if score >= 0 and (self._mistake is None or score > self._mistake[0]):
            cells = (images[worst].cpu(), labels[worst].cpu(), outputs[worst].float().cpu())
            self._mistake = (score, *cells)

    def _collect(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """The picked images with their predictions: round-robin over the classes (every class's first
        image before any class's second), then the most confident mistake."""
        if self._first is not None:
            images, labels, outputs = self._first
            notes: list[str] = []
        else:
            depth = max((len(picks) for picks in self._picks.values()), default=0)
            classes = sorted(self._picks.items())
            cells = [picks[k] for k in range(depth) for _, picks in classes if k < len(picks)]
            cells = cells[: self.num_samples - (self._mistake is not None)]
            notes = [""] * len(cells)
            if self._mistake is not None:
                cells.append(self._mistake[1:])
                notes.append("most confident mistake")
            if not cells:
                return
            images, labels, outputs = (torch.stack(column) for column in zip(*cells, strict=True))
        predicted, confidence = pl_module.loss.describe(outputs, pl_module.class_names)
        self._samples = {
            "epoch": trainer.current_epoch,
            "images": images,
            "predicted": predicted,
            "probability": confidence,
            "labels": pl_module.loss.describe_labels(labels, pl_module.class_names),
            "notes": notes,
        }

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Images for the loggers that show them: drawing costs, so nothing is drawn without one."""
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        self._collect(trainer, pl_module)
        if not self._due(trainer) or not takes_figures(trainer):
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
            samples["notes"],
        )

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        matrix = pl_module.confusion_matrix("test")
        if matrix is None or not trainer.is_global_zero:
            return
        figure = confusion_matrix_figure(matrix, pl_module.class_names, "test")
        log_figure(trainer, "test/confusion_matrix", figure, trainer.global_step)
        save_figure(figure, self.output_dir / "test_confusion_matrix.png")
