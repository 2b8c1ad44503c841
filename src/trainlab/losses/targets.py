"""How integer class labels are encoded for each kind of loss (the `target:` key of a loss config)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F

PAD = -1  # label positions after a sequence's end, in padded target sequences

TargetForm = Callable[[torch.Tensor, int, float], torch.Tensor]


def index(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    return labels


def one_hot(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    return F.one_hot(labels, num_classes).float()


def soft(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    """A probability row per sample: 1 - smoothing on the true class, the rest spread evenly."""
    return one_hot(labels, num_classes, 0.0) * (1.0 - smoothing) + smoothing / num_classes


def plus_minus_one(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    """+1 for the true class, -1 for the others (SoftMarginLoss, HingeEmbeddingLoss)."""
    return one_hot(labels, num_classes, 0.0) * 2.0 - 1.0


def multilabel_index(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    """MultiLabelMarginLoss's format: the target classes first, then -1 padding: [y, -1, -1, ...]."""
    target = torch.full((len(labels), num_classes), -1, dtype=torch.long, device=labels.device)
    target[:, 0] = labels
    return target


TARGET_FORMS: Mapping[str, TargetForm] = {
    "index": index,
    "one_hot": one_hot,
    "soft": soft,
    "plus_minus_one": plus_minus_one,
    "multilabel_index": multilabel_index,
}
