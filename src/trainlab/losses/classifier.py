"""One adapter between a classifier (logits, class-index labels) and any torch.nn loss.

Each `conf/loss/<name>.yaml` names a torch criterion and declares which `input` form of the logits and
which `target` form of the labels that criterion expects; the module never needs to know that BCE wants
one-hot floats. Adding a form is one entry in INPUT_FORMS or TARGET_FORMS.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainlab.errors import ConfigError

InputForm = Callable[[torch.Tensor], torch.Tensor]
TargetForm = Callable[[torch.Tensor, int], torch.Tensor]

INPUT_FORMS: Mapping[str, InputForm] = {
    "logits": lambda logits: logits,
    "probs": lambda logits: logits.softmax(dim=1),
    "log_probs": lambda logits: logits.log_softmax(dim=1),
    "sigmoid": torch.sigmoid,
}

TARGET_FORMS: Mapping[str, TargetForm] = {
    "index": lambda labels, num_classes: labels,
    "one_hot": lambda labels, num_classes: F.one_hot(labels, num_classes).float(),
}


class ClassifierLoss(nn.Module):
    """criterion(input_form(logits), target_form(labels)), reduced to a scalar; argmax for predictions.

    `criterion` is a partial of the torch loss class (Hydra `_partial_: true`): list-valued arguments such
    as `weight` or `pos_weight` arrive from YAML as lists and are turned into tensors here, so they become
    buffers of the loss and follow it to the training device.
    """

    def __init__(
        self, criterion: Callable[..., nn.Module], input: str = "logits", target: str = "index"
    ) -> None:
        super().__init__()
        self.input_name = _check_form("loss.input", input, INPUT_FORMS)
        self.target_name = _check_form("loss.target", target, TARGET_FORMS)
        self.input_form = INPUT_FORMS[input]
        self.target_form = TARGET_FORMS[target]
        self.criterion = _build_criterion(criterion)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = self.criterion(self.input_form(logits), self.target_form(labels, logits.shape[1]))
        return loss.mean() if loss.ndim else loss  # reduction="none" still needs a scalar to backprop

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        """The predicted class index per sample, used for accuracy."""
        return logits.argmax(dim=1)

    def extra_repr(self) -> str:
        return f"input={self.input_name}, target={self.target_name}"


def _check_form(key: str, name: str, forms: Mapping[str, Any]) -> str:
    if name not in forms:
        raise ConfigError(f"{key}={name!r} is unknown; choose one of: {', '.join(forms)}.")
    return name


def _build_criterion(criterion: Callable[..., nn.Module]) -> nn.Module:
    if isinstance(criterion, nn.Module):
        return criterion
    keywords = criterion.keywords if isinstance(criterion, functools.partial) else {}
    tensors = {k: torch.as_tensor(list(v), dtype=torch.float32) for k, v in keywords.items() if _is_list(v)}
    return criterion(**tensors)


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)  # OmegaConf's ListConfig too
