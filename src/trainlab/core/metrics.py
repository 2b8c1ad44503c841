"""Epoch metrics per stage, summed over all samples and synced across devices (torchmetrics).

Every stage logs `loss` and `acc`; what `acc` means follows the task: the share of images classified
right, or for sequences the share of strings read exactly right (plus `cer`, the character error rate).
Classification with more than 5 classes also logs `acc_top5`: the share of images whose class is among
the 5 highest class scores (torchmetrics' MulticlassAccuracy(top_k=5, average="micro")).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchmetrics import MeanMetric, Metric, SumMetric
from torchmetrics.classification import MulticlassConfusionMatrix
from torchmetrics.text import CharErrorRate

from trainlab.losses.targets import PAD

# which way each logged quantity improves, by the last part of its name (val/acc -> acc)
HIGHER_IS_BETTER = {
    "acc": True,
    "acc_best": True,
    "acc_top5": True,
    "loss": False,
    "loss_step": False,
    "cer": False,
}
TOP_K = 5


def higher_is_better(metric: str) -> bool | None:
    """True for accuracies, False for losses and error rates, None for names it does not know."""
    return HIGHER_IS_BETTER.get(metric.rsplit("/", 1)[-1])


class ClassificationMetrics(nn.Module):
    """Sample-weighted mean loss and accuracy of one stage over an epoch, synced across devices.

    Kept as device-side sums (loss x samples, correct, samples) that never ask the host for a value
    during the epoch: torchmetrics' MeanMetric checks every update for NaN (`nans.any()`, a host sync)
    and MulticlassAccuracy counts with bincount (sized by a host-side max on CUDA). A NaN loss is kept,
    not dropped, so it shows in the epoch's loss. With `confusion`, also the epoch's confusion matrix
    (rows: true class, columns: predicted), kept in `last_confusion` after the reset so figures and
    reports can read it once the epoch has ended. With more than `TOP_K` classes, also the top-5 count
    (a class among the 5 highest scores; ties broken by torch.topk).
    """

    def __init__(self, num_classes: int, confusion: bool = False) -> None:
        super().__init__()
        self.loss_sum = SumMetric(nan_strategy="disable")
        self.correct = SumMetric(nan_strategy="disable")
        self.samples = SumMetric(nan_strategy="disable")
        self.top_k = TOP_K if num_classes > TOP_K else None  # with <= 5 classes top-5 is always 1
        self.correct_top_k = SumMetric(nan_strategy="disable") if self.top_k else None
        self.names = ("loss", "acc", "acc_top5") if self.top_k else ("loss", "acc")  # compute_and_reset()'s
        self.confusion = MulticlassConfusionMatrix(num_classes) if confusion else None
        self.last_confusion: torch.Tensor | None = None

    def update(self, loss: torch.Tensor, adapter: Any, outputs: torch.Tensor, labels: torch.Tensor) -> None:
        """One batch: its mean `loss`, the network's `outputs` scored by the loss `adapter`'s
        class_scores (N, classes), `labels` (N,) class indices."""
        scores = adapter.class_scores(outputs)
        preds = scores.argmax(dim=1)
        labels = labels.to(preds.device)
        count = torch.tensor(float(len(labels)), device=loss.device)
        self.loss_sum.update(loss.float() * count)
        self.correct.update((preds == labels).sum().float())
        self.samples.update(count)
        if self.correct_top_k is not None:
            top = scores.topk(self.top_k, dim=1).indices
            self.correct_top_k.update((top == labels[:, None]).any(dim=1).sum().float())
        if self.confusion is not None:
            self.confusion.update(preds, labels)

    def compute_and_reset(self) -> dict[str, torch.Tensor]:
        samples = self.samples.compute()
        values = {"loss": self.loss_sum.compute() / samples, "acc": self.correct.compute() / samples}
        if self.correct_top_k is not None:
            values["acc_top5"] = self.correct_top_k.compute() / samples
            self.correct_top_k.reset()
        for metric in (self.loss_sum, self.correct, self.samples):
            metric.reset()
        if self.confusion is not None:
            self.last_confusion = self.confusion.compute().cpu()
            self.confusion.reset()
        return values


class SequenceMetrics(nn.Module):
    """Mean loss, exact-match accuracy and character error rate of decoded label sequences.

    Predictions and labels are (N, length) tensors padded with -1. The error rate is torchmetrics'
    CharErrorRate: the edit distance (insertions, deletions, substitutions) summed over samples, divided
    by the summed label lengths; each class index is one character.
    """

    last_confusion = None  # no confusion matrix for sequences
    names = ("loss", "acc", "cer")  # the keys of compute_and_reset()

    def __init__(self) -> None:
        super().__init__()
        self.loss = MeanMetric()
        self.exact = MeanMetric()
        self.cer = CharErrorRate()

    def update(self, loss: torch.Tensor, adapter: Any, outputs: torch.Tensor, labels: torch.Tensor) -> None:
        """One batch: its mean `loss`, the network's `outputs` decoded by the loss `adapter`'s predict
        into (N, length) sequences, `labels` (N, length) padded with -1."""
        preds = adapter.predict(outputs)
        self.loss.update(loss, weight=len(labels))
        self.exact.update(exact_matches(preds, labels).float())
        self.cer.update(as_strings(preds), as_strings(labels))

    def compute_and_reset(self) -> dict[str, torch.Tensor]:
        values = {
            "loss": self.loss.compute(),
            "acc": self.exact.compute(),
            "cer": torch.nan_to_num(self.cer.compute(), nan=0.0),  # no label characters: no errors
        }
        for metric in (self.loss, self.exact, self.cer):
            metric.reset()
        return values


def stage_metrics(task: str, num_classes: int, confusion: bool = False) -> nn.Module:
    """The metrics a stage of a `task` run keeps (the loss's task: classification or sequence)."""
    if task == "sequence":
        return SequenceMetrics()
    return ClassificationMetrics(num_classes, confusion=confusion)


def exact_matches(preds: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per sample: whether the padded sequences are equal (on the device, no host sync)."""
    width = max(preds.shape[1], labels.shape[1])
    preds = nn.functional.pad(preds, (0, width - preds.shape[1]), value=PAD)
    labels = nn.functional.pad(labels.to(preds.device), (0, width - labels.shape[1]), value=PAD)
    return (preds == labels).all(dim=1)


def as_strings(sequences: torch.Tensor) -> list[str]:
    """Each padded row of class indices as a string, one character per class (for CharErrorRate)."""
    return ["".join(chr(0xE000 + v) for v in row if v != PAD) for row in sequences.tolist()]


def running_state(metrics: nn.Module) -> dict[str, dict[str, torch.Tensor]]:
    """The epoch's running sums so far, per torchmetrics metric inside a stage's metrics.

    A checkpoint taken mid-epoch carries them, so the resumed epoch's means count every batch of the
    epoch, not only those after the resume. All of them are sum-reduced states.
    """
    return {
        name: {key: value.detach().clone() for key, value in metric.metric_state.items()}
        for name, metric in metrics.named_children()
        if isinstance(metric, Metric) and metric.update_called
    }


def load_running_state(metrics: nn.Module, state: dict[str, dict[str, torch.Tensor]]) -> None:
    """Add sums saved by `running_state` to the (freshly reset) metrics."""
    for name, values in state.items():
        metric = getattr(metrics, name, None)
        if isinstance(metric, Metric):
            metric.merge_state({key: value.to(metric.device) for key, value in values.items()})
