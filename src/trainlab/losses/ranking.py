"""MarginRankingLoss for classification: the true class's score must beat every other class's score."""

from __future__ import annotations

import torch

from trainlab.losses.adapter import LossAdapter


class TrueClassRankingLoss(LossAdapter):
    """Pairs (score of the true class, score of each other class) with y = +1 ("first ranks higher").

    Per sample that is K-1 pairs; the loss is max(0, margin - (s_true - s_other)) averaged over pairs.
    """

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        n, k = logits.shape
        true_score = logits.gather(1, labels[:, None])  # (N, 1)
        others = ~torch.nn.functional.one_hot(labels, k).bool()
        other_scores = logits[others].view(n, k - 1)
        first = true_score.expand(n, k - 1)
        return self.criterion(first, other_scores, torch.ones_like(first))
