"""Losses that take a transform of the class scores and an encoding of the labels.

`input` picks how the logits are presented (INPUT_FORMS), `target` how labels are encoded
(trainlab.losses.targets.TARGET_FORMS); together they cover the torch.nn classification and regression
losses. Adding a form is one entry in either table.
"""

from __future__ import annotations

import warnings
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


# The input forms a torch criterion is made for, and why (torch.nn's docs): another form is legal and
# trains, but not as the criterion means (softmax applied twice, or raw scores as log-probabilities).
NATIVE_INPUTS: Mapping[str, tuple[frozenset[str], str]] = {
    "CrossEntropyLoss": (frozenset({"logits", "log_probs"}), "applies log-softmax to its input itself"),
    "BCEWithLogitsLoss": (frozenset({"logits"}), "applies a sigmoid to its input itself"),
    "MultiLabelSoftMarginLoss": (frozenset({"logits"}), "applies a sigmoid to its input itself"),
    "NLLLoss": (frozenset({"log_probs"}), "expects log-probabilities"),
    "KLDivLoss": (frozenset({"log_probs"}), "expects log-probabilities (log_target=false)"),
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

    def input_advice(self) -> str | None:
        """A warning when loss.input is not the form the criterion is made for (None when it is)."""
        name = type(self.criterion).__name__
        native, why = NATIVE_INPUTS.get(name, (frozenset(), ""))
        if name == "PoissonNLLLoss":
            log_input = getattr(self.criterion, "log_input", True)
            native = frozenset({"logits", "log_probs"} if log_input else {"probs", "sigmoid"})
            why = f"with log_input={str(log_input).lower()} expects {'log-rates' if log_input else 'rates'}"
        if not native or self.input_name in native:
            return None
        return (
            f"loss.input={self.input_name}: {name} {why}, so it trains on something else than it is made "
            f"for; loss.input={' or '.join(sorted(native))} is its form."
        )

    def forms_that_fit(self, logits: torch.Tensor, labels: torch.Tensor) -> list[tuple[str, str]]:
        """The (input, target) forms with which the criterion takes these outputs and labels without an
        error or a shape-broadcast warning: what to suggest when the configured pair does not fit."""
        fitting = []
        for input_name, input_form in INPUT_FORMS.items():
            for target_name, target_form in TARGET_FORMS.items():
                try:
                    with warnings.catch_warnings(), torch.no_grad():
                        warnings.simplefilter("error", UserWarning)
                        target = target_form(labels, logits.shape[1], self.smoothing)
                        self.criterion(input_form(logits.float()), target)
                except Exception:  # any failure means "does not fit"
                    continue
                fitting.append((input_name, target_name))
        return fitting

    def extra_repr(self) -> str:
        return f"input={self.input_name}, target={self.target_name}, smoothing={self.smoothing}"


def check_choice(key: str, name: str, choices: Mapping[str, Any]) -> str:
    if name not in choices:
        raise ConfigError(f"{key}={name!r} is unknown; choose one of: {', '.join(choices)}.")
    return name
