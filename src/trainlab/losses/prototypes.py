"""Metric-learning losses: the network's output is an embedding, classes are prototypes in that space.

A classifier outputs one vector of num_classes values per image; these losses treat it as an embedding
(of that size) and classify by the nearest class prototype, so accuracy is real: a sample counts as
correct only if it lands closest to its own class.
- hinge_embedding, cosine_embedding: one learnable prototype per class, trained with the net.
- triplet_margin: triplets mined from the batch; prototypes are running means of each class's
  embeddings (buffers, saved in checkpoints), updated during training only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from trainlab.errors import ConfigError
from trainlab.losses.adapter import LossAdapter

Criterion = Callable[..., nn.Module] | nn.Module


class _PrototypeLoss(LossAdapter):
    def __init__(
        self,
        criterion: Criterion,
        num_classes: int | None = None,
        class_counts: Sequence[int] | None = None,
    ) -> None:
        super().__init__(criterion, num_classes, class_counts)
        if num_classes is None:
            raise ConfigError(f"{type(self).__name__} needs num_classes (set by trainlab from the data).")


class _LearnedPrototypes(_PrototypeLoss):
    """One trainable prototype per class, orthogonal at the start, optimized with the network."""

    def __init__(
        self,
        criterion: Criterion,
        num_classes: int | None = None,
        class_counts: Sequence[int] | None = None,
    ) -> None:
        super().__init__(criterion, num_classes, class_counts)
        self.prototypes = nn.Parameter(torch.empty(num_classes, num_classes))
        nn.init.orthogonal_(self.prototypes)


class PrototypeDistanceLoss(_LearnedPrototypes):
    """HingeEmbeddingLoss on the distances from each embedding to every class prototype.

    y = +1 for the true class (the distance itself is the loss) and -1 for the others
    (max(0, margin - distance)): pull to your own prototype, push the others beyond the margin.
    """

    def distances(self, embeddings: torch.Tensor) -> torch.Tensor:
        return torch.cdist(embeddings, self.prototypes.to(embeddings.dtype))

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        target = F.one_hot(labels, self.num_classes).float() * 2 - 1
        return self.criterion(self.distances(embeddings), target)

    def class_scores(self, embeddings: torch.Tensor) -> torch.Tensor:
        return -self.distances(embeddings)


class PrototypeCosineLoss(_LearnedPrototypes):
    """CosineEmbeddingLoss between each embedding and every class prototype.

    y = +1 for the true class (1 - cos) and -1 for the others (max(0, cos - margin)).
    """

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        n, k = len(embeddings), self.num_classes
        pairs_a = embeddings.repeat_interleave(k, dim=0)  # e_0 e_0 ... e_1 e_1 ...
        pairs_b = self.prototypes.to(embeddings.dtype).repeat(n, 1)  # p_0 p_1 ... p_0 p_1 ...
        target = (F.one_hot(labels, k).float() * 2 - 1).flatten()
        loss = self.criterion(pairs_a, pairs_b, target)
        return loss.view(n, k) if loss.ndim else loss  # reduction="none": one row per sample

    def class_scores(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Cosine similarity to each prototype."""
        return F.normalize(embeddings, dim=1) @ F.normalize(self.prototypes.to(embeddings.dtype), dim=1).T


class BatchTripletLoss(_PrototypeLoss):
    """TripletMarginLoss on triplets mined from the batch by label.

    Each sample with a same-class partner in the batch is an anchor; its positive is a random other
    sample of its class and its negative the closest sample of another class (batch-hard negative).
    Running class means of the embeddings (momentum `prototype_momentum`) serve for prediction.
    """

    def __init__(
        self,
        criterion: Criterion,
        num_classes: int | None = None,
        class_counts: Sequence[int] | None = None,
        prototype_momentum: float = 0.9,
    ) -> None:
        super().__init__(criterion, num_classes, class_counts)
        self.register_buffer("prototypes", torch.zeros(num_classes, num_classes))
        self.register_buffer("seen", torch.zeros(num_classes, dtype=torch.bool))
        self.momentum = prototype_momentum

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.training:
            self._update_prototypes(embeddings.detach(), labels)
        anchors, positives, negatives = mine_triplets(embeddings.detach(), labels)
        if len(anchors) == 0:  # no class appears twice in this batch: nothing to learn from
            return embeddings.sum() * 0.0
        return self.criterion(embeddings[anchors], embeddings[positives], embeddings[negatives])

    @torch.no_grad()
    def _update_prototypes(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        for cls in labels.unique():
            mean = embeddings[labels == cls].mean(dim=0).to(self.prototypes.dtype)
            if self.seen[cls]:
                self.prototypes[cls].lerp_(mean, 1 - self.momentum)
            else:
                self.prototypes[cls] = mean
                self.seen[cls] = True

    def class_scores(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Negative distance to each running class mean."""
        return -torch.cdist(embeddings, self.prototypes.to(embeddings.dtype))


def mine_triplets(embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Indices (anchor, positive, negative): random positive, hardest (closest) negative per anchor."""
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    positive_mask = same & ~eye
    has_positive = positive_mask.any(dim=1) & (~same).any(dim=1)
    anchors = has_positive.nonzero().flatten()
    if len(anchors) == 0:
        return anchors, anchors, anchors
    random_scores = torch.rand(positive_mask.shape, device=labels.device).masked_fill(~positive_mask, -1.0)
    positives = random_scores[anchors].argmax(dim=1)
    distances = torch.cdist(embeddings, embeddings).masked_fill(same, float("inf"))
    negatives = distances[anchors].argmin(dim=1)
    return anchors, positives, negatives
