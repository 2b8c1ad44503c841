"""A linear classifier over (pixel position, intensity level) tokens with sparse gradients.

Each image becomes a bag of H*W*C tokens, one per pixel: token = position * levels + quantized value.
An nn.EmbeddingBag(sparse=True) sums one learned num_classes-vector per token (plus a bias token), so
the model is a logistic regression on one-hot pixel intensities whose every gradient is sparse: only the
rows of tokens present in the batch change. It is what torch.optim.SparseAdam is for.
"""

from __future__ import annotations

import torch
from torch import nn


class BagOfPixels(nn.Module):
    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        image_size: int = 32,
        levels: int = 8,
        value_range: tuple[float, float] = (-1.0, 1.0),
    ) -> None:
        super().__init__()
        self.positions = in_channels * image_size * image_size
        self.levels = levels
        self.low, self.high = value_range
        self.bias_token = self.positions * levels
        self.tokens = nn.EmbeddingBag(self.bias_token + 1, num_classes, mode="sum", sparse=True)
        nn.init.zeros_(self.tokens.weight)
        self.register_buffer("offsets", torch.arange(self.positions) * levels, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scaled = (x.flatten(1) - self.low) / (self.high - self.low)
        level = (scaled * self.levels).long().clamp_(0, self.levels - 1)
        tokens = level + self.offsets
        bias = torch.full((len(x), 1), self.bias_token, dtype=torch.long, device=x.device)
        return self.tokens(torch.cat([tokens, bias], dim=1))
