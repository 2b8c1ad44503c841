"""CTC: per-time-step scores aligned with a shorter label sequence (OCR, speech), for sequence tasks.

The model outputs (N, T, classes + 1) scores, one row per time step (a column of the image for
model=crnn); labels are (N, L) class indices padded with -1. CTCLoss sums over every alignment of the
label to the T steps that repeats labels and inserts blanks, so no per-step labels are needed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from trainlab.errors import ConfigError
from trainlab.losses.adapter import LossAdapter
from trainlab.losses.targets import PAD


class CTCSequenceLoss(LossAdapter):
    """torch.nn.CTCLoss over log-softmaxed step scores; greedy decoding for predictions.

    `criterion.blank` is the output index of the blank; classes take the other num_classes outputs in
    order, so class c is output c for c < blank and c + 1 above it. Every sample uses all T steps
    (fixed-width images) and its own label length.
    """

    task = "sequence"

    def __init__(
        self,
        criterion: Callable[..., nn.Module] | nn.Module,
        num_classes: int | None = None,
        class_counts: Sequence[int] | None = None,
    ) -> None:
        super().__init__(criterion, num_classes, class_counts)
        self.blank = int(self.criterion.blank)
        if num_classes is not None and not 0 <= self.blank <= num_classes:
            raise ConfigError(
                f"loss.criterion.blank={self.blank}: the model outputs {num_classes + 1} scores per step "
                f"({num_classes} classes + the blank), so blank must be in 0..{num_classes}."
            )

    def forward(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        log_probs = scores.float().log_softmax(dim=-1).transpose(0, 1)  # (T, N, C), as CTCLoss takes it
        steps, batch = log_probs.shape[:2]
        target_lengths = (labels != PAD).sum(dim=1)
        targets = self.to_outputs(labels.clamp(min=0))
        input_lengths = torch.full((batch,), steps, dtype=torch.long, device=scores.device)
        return self.criterion(log_probs, targets, input_lengths, target_lengths)

    def to_outputs(self, classes: torch.Tensor) -> torch.Tensor:
        return classes + (classes >= self.blank).long()

    def to_classes(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs - (outputs > self.blank).long()

    def predict(self, scores: torch.Tensor) -> torch.Tensor:
        """Greedy decoding: the best output per step, repeats merged, blanks dropped; (N, T) padded with -1.

        Written without data-dependent shapes, so it stays on the device with no host sync.
        """
        best = scores.argmax(dim=-1)
        previous = F.pad(best[:, :-1], (1, 0), value=-1)
        keep = (best != self.blank) & (best != previous)
        steps = best.shape[1]
        slot = torch.where(keep, keep.long().cumsum(dim=1) - 1, steps)  # unkept steps go to a spare column
        decoded = torch.full((best.shape[0], steps + 1), PAD, dtype=torch.long, device=best.device)
        decoded.scatter_(1, slot, torch.where(keep, self.to_classes(best), PAD))
        return decoded[:, :steps]

    def class_scores(self, outputs: torch.Tensor) -> torch.Tensor:
        raise ConfigError(
            "loss=ctc predicts label sequences, not one class per image: per-class scores and "
            "probabilities do not apply (use predict() for the decoded sequences)."
        )

    def describe(self, outputs: torch.Tensor, class_names: Sequence[str]) -> tuple[list[str], list[float]]:
        """Decoded strings and the probability of the greedy path that produced each."""
        path = outputs.float().log_softmax(dim=-1).max(dim=-1).values.sum(dim=1).exp()
        return self.describe_labels(self.predict(outputs), class_names), path.tolist()

    def describe_labels(self, labels: torch.Tensor, class_names: Sequence[str]) -> list[str]:
        return ["".join(class_names[c] for c in row if c != PAD) for row in labels.tolist()]

    def extra_repr(self) -> str:
        return f"blank={self.blank}"
