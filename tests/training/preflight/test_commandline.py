"""Hydra's start-up errors, explained: real errors from composing trainlab's config."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_module

from trainlab.training.preflight.commandline import explain, nearest


@pytest.mark.parametrize(
    ("typed", "candidates", "meant"),
    [
        ("learning_rate", ["lr", "betas", "weight_decay"], "lr"),
        ("wd", ["lr", "weight_decay"], "weight_decay"),
        ("max_epohcs", ["max_epochs", "max_steps"], "max_epochs"),
        ("optimizer", ["optim", "model"], "optim"),
        ("zzz", ["lr", "betas"], None),
    ],
)
def test_nearest_takes_abbreviations_and_misspellings(typed, candidates, meant):
    assert nearest(typed, candidates) == meant


def composed_error(*overrides: str) -> BaseException:
    with initialize_config_module("trainlab.conf", version_base="1.3"), pytest.raises(Exception) as raised:
        compose("train", overrides=list(overrides))
    return raised.value


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "optim.learning_rate=0.1",
            "optim has no key 'learning_rate', so nothing would read it. Did you mean "
            "optim.lr=0.1? The keys of optim: param_groups, no_decay, lr,",
        ),
        (
            "optimizer=adam",
            "'optimizer' is neither a config group nor a key, so nothing would read it. Did "
            "you mean optim=adam?",
        ),
        (
            "optim=adamx",
            "optim=adamx is not an option of the optim config group. Did you mean optim=adamax? "
            "The options: adadelta,",
        ),
        ("loss=nope", "loss=nope is not an option of the loss config group. The options"),
        ("optim.lr=[", "optim.lr=["),  # a syntax error: Hydra's words, on one line
    ],
)
def test_composition_errors_become_one_paragraph(override, message):
    text = explain(composed_error(override))
    assert text is not None and message in text and "\n" not in text
    assert "_target_" not in text  # internal keys are not offered


def test_other_errors_are_left_to_hydra():
    assert explain(ValueError("x")) is None
    assert explain(OSError(2, "No such file or directory", "/somewhere")) is None  # not raised by Hydra
