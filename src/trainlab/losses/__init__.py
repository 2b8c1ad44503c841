"""Losses as adapters: how model outputs and labels (classes or sequences) map onto each torch loss."""

from trainlab.losses.adapter import LossAdapter
from trainlab.losses.classifier import INPUT_FORMS, ClassifierLoss
from trainlab.losses.gaussian import GaussianNLLClassifierLoss
from trainlab.losses.prototypes import BatchTripletLoss, PrototypeCosineLoss, PrototypeDistanceLoss
from trainlab.losses.ranking import TrueClassRankingLoss
from trainlab.losses.sequence import CTCSequenceLoss
from trainlab.losses.targets import TARGET_FORMS

__all__ = [
    "INPUT_FORMS",
    "TARGET_FORMS",
    "BatchTripletLoss",
    "CTCSequenceLoss",
    "ClassifierLoss",
    "GaussianNLLClassifierLoss",
    "LossAdapter",
    "PrototypeCosineLoss",
    "PrototypeDistanceLoss",
    "TrueClassRankingLoss",
]
