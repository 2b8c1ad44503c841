"""GaussianNLLLoss for classification: class probabilities as the mean, plus a learned variance."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from trainlab.errors import ConfigError
from trainlab.losses.adapter import LossAdapter


class GaussianNLLClassifierLoss(LossAdapter):
    """The one-hot target is modelled as N(mean=softmax(logits), var) per class.

    GaussianNLLLoss needs a variance next to each prediction, which a classifier does not output; a small
    head owned by the loss (a linear map of the logits, softplus-positive) predicts one per sample and
    class from the (detached) logits. Its parameters are part of the LightningModule, so the optimizer
    trains them with the net.
    """

    def __init__(
        self,
        criterion: Callable[..., nn.Module] | nn.Module,
        num_classes: int | None = None,
        class_counts: Sequence[int] | None = None,
        min_variance: float = 1e-4,
    ) -> None:
        super().__init__(criterion, num_classes, class_counts)
        if num_classes is None:
            raise ConfigError("loss=gaussian_nll needs num_classes (set by trainlab from the data).")
        self.variance_head = nn.Linear(num_classes, num_classes)
        nn.init.zeros_(self.variance_head.weight)
        nn.init.constant_(self.variance_head.bias, -2.0)  # start with var ~ 0.13
        self.min_variance = min_variance

    def variance(self, logits: torch.Tensor) -> torch.Tensor:
        # Detached input: otherwise the network learns to bend its class scores to shrink the NLL through
        # the variance instead of fitting the mean, and hard samples stall.
        return F.softplus(self.variance_head(logits.detach())) + self.min_variance

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        target = F.one_hot(labels, logits.shape[1]).float()
        return self.criterion(logits.softmax(dim=1), target, self.variance(logits))
