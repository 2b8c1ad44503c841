"""The loss contract: a torch criterion plus how a classifier's outputs and labels map onto it.

Every `conf/loss/<name>.yaml` builds a LossAdapter. The module only ever calls
`adapter(outputs, labels)` (a loss tensor, reduced or per sample), `adapter.predict(outputs)` (class
indices for accuracy) and `adapter.probabilities(outputs)` (for prediction reports); everything
loss-specific stays here.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from trainlab.errors import ConfigError

log = logging.getLogger(__name__)

CLASS_WEIGHT_KEYS = ("weight", "pos_weight")


class LossAdapter(nn.Module):
    """Base class. `task` names the kind of data the loss fits (checked against the datamodule's)."""

    task = "classification"

    def __init__(
        self,
        criterion: Callable[..., nn.Module] | nn.Module,
        num_classes: int | None = None,
        class_counts: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.criterion = build_criterion(criterion, num_classes, class_counts)

    def forward(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def class_scores(self, outputs: torch.Tensor) -> torch.Tensor:
        """One score per class and sample, higher meaning more likely: the logits for most losses.

        Losses whose network outputs are not class scores (embeddings) override this, so prediction
        and probabilities follow from one definition.
        """
        return outputs

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        """The predicted class index per sample, used for accuracy."""
        return self.class_scores(outputs).argmax(dim=1)

    def probabilities(self, outputs: torch.Tensor) -> torch.Tensor:
        """A distribution over classes per sample: the softmax of the class scores."""
        return self.class_scores(outputs).float().softmax(dim=1)

    def describe(self, outputs: torch.Tensor, class_names: Sequence[str]) -> tuple[list[str], list[float]]:
        """Per sample, the prediction as text and its probability (for prediction grids)."""
        probabilities = self.probabilities(outputs)
        confidence, predicted = probabilities.max(dim=1)
        return [class_names[i] for i in predicted.tolist()], confidence.tolist()

    def describe_labels(self, labels: torch.Tensor, class_names: Sequence[str]) -> list[str]:
        return [class_names[i] for i in labels.tolist()]


def build_criterion(
    criterion: Callable[..., nn.Module] | nn.Module,
    num_classes: int | None,
    class_counts: Sequence[int] | None,
) -> nn.Module:
    """Complete a criterion partial: YAML lists -> tensors, `auto` class weights, old spellings.

    Tensors passed at construction become buffers of the criterion, so they follow it to the device.
    """
    if isinstance(criterion, nn.Module):
        return criterion
    keywords = criterion.keywords if isinstance(criterion, functools.partial) else {}
    name = getattr(getattr(criterion, "func", criterion), "__name__", "the criterion")
    overrides: dict[str, Any] = {}
    if keywords.get("reduction") == "elementwise_mean":
        warnings.warn(
            f"{name}: reduction='elementwise_mean' is the pre-1.0 spelling of 'mean'; using 'mean'.",
            UserWarning,
            stacklevel=2,
        )
        overrides["reduction"] = "mean"
    for key, value in keywords.items():
        if isinstance(value, str) and value == "auto":
            overrides[key] = auto_class_weights(key, class_counts)
        elif _is_list(value):
            overrides[key] = torch.as_tensor(list(value), dtype=torch.float32)
        given = overrides[key].numel() if key in CLASS_WEIGHT_KEYS and key in overrides else None
        if given is not None and num_classes is not None and given != num_classes:
            raise ConfigError(
                f"loss.criterion.{key} has {given} values but the data has {num_classes} classes: give one "
                f"value per class, or {key}=auto to derive them from the class counts."
            )
    return criterion(**overrides)


def auto_class_weights(key: str, class_counts: Sequence[int] | None) -> torch.Tensor:
    """Balance classes by their training-split counts.

    weight: N / (K * n_c), so every class contributes equally in total (1 for balanced data).
    pos_weight: (N - n_c) / n_c, the negatives-to-positives ratio of each one-vs-rest output.
    """
    if key not in CLASS_WEIGHT_KEYS:
        raise ConfigError(
            f"loss.criterion.{key}=auto is not supported: only weight and pos_weight can be auto."
        )
    if not class_counts:
        raise ConfigError(
            f"loss.criterion.{key}=auto needs the training split's class counts, which are unknown."
        )
    counts = torch.as_tensor(list(class_counts), dtype=torch.float32)
    if (counts == 0).any():
        empty = [i for i, n in enumerate(class_counts) if n == 0]
        raise ConfigError(f"loss.criterion.{key}=auto: classes {empty} have no training samples.")
    total = counts.sum()
    weights = total / (len(counts) * counts) if key == "weight" else (total - counts) / counts
    log.info(
        "loss.criterion.%s=auto -> %s (training class counts %s)", key, weights.tolist(), list(class_counts)
    )
    return weights


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)  # OmegaConf's ListConfig too
