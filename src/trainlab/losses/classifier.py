"""Losses that take a transform of the class scores and an encoding of the labels.

`input` picks how the logits are presented (INPUT_FORMS), `target` how labels are encoded
(trainlab.losses.targets.TARGET_FORMS); together they cover the torch.nn classification and regression
losses. Adding a form is one entry in either table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from trainlab.errors import ConfigError
from trainlab.losses.adapter import LossAdapter
from trainlab.losses.targets import TARGET_FORMS

InputForm = Callable[[torch.Tensor], torch.Tensor]

INPUT_FORMS: Mapping[str, InputForm] = {
    "logits": lambda logits: logits,
    "probs": lambda logits: logits.softmax(dim=1),
    "log_probs": lambda logits: logits.log_softmax(dim=1),
    "sigmoid": torch.sigmoid,
}


class ClassifierLoss(LossAdapter):
    """criterion(input_form(logits), target_form(labels)); the prediction is the argmax of the logits.

    `smoothing` spreads that much probability mass over all classes in `soft` targets.
    """

    def __init__(
        self,
        criterion: Callable[..., nn.Module] | nn.Module,
        input: str = "logits",
        target: str = "index",
        smoothing: float = 0.0,
        num_classes: int | None = None,
        class_counts: Sequence[int] | None = None,
    ) -> None:
        super().__init__(criterion, num_classes, class_counts)
        self.input_name = check_choice("loss.input", input, INPUT_FORMS)
        self.target_name = check_choice("loss.target", target, TARGET_FORMS)
        if not 0.0 <= smoothing < 1.0:
            raise ConfigError(f"loss.smoothing={smoothing} must be in [0, 1).")
        self.input_form = INPUT_FORMS[input]
        self.target_form = TARGET_FORMS[target]
        self.smoothing = smoothing

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        target = self.target_form(labels, logits.shape[1], self.smoothing)
        return self.criterion(self.input_form(logits), target)

    def extra_repr(self) -> str:
        return f"input={self.input_name}, target={self.target_name}, smoothing={self.smoothing}"


def check_choice(key: str, name: str, choices: Mapping[str, Any]) -> str:
    if name not in choices:
        raise ConfigError(f"{key}={name!r} is unknown; choose one of: {', '.join(choices)}.")
    return name
