"""Losses as objects that know how classifier outputs and integer labels map onto them."""

from trainlab.losses.classifier import INPUT_FORMS, TARGET_FORMS, ClassifierLoss

__all__ = ["INPUT_FORMS", "TARGET_FORMS", "ClassifierLoss"]
