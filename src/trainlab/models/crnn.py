"""CRNN (Shi et al., 2015) for digit strings: convolutions read the strip, the width axis becomes time.

Convolutions shrink the height to 1 and the width by 4; each of the width/4 columns is one time step,
and a bidirectional GRU turns the column features into per-step scores over the classes plus the CTC
blank. A plain classifier's (N, classes) output has no time axis, which is why loss=ctc needs this model.
"""

from __future__ import annotations

import torch
from torch import nn


def conv_block(inputs: int, outputs: int, pool: tuple[int, int] | None) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(inputs, outputs, 3, padding=1, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
    ]
    if pool is not None:
        layers.append(nn.MaxPool2d(pool))
    return nn.Sequential(*layers)


class CRNN(nn.Module):
    """(N, C, H, W) images -> (N, W / 4, num_classes + 1) scores per time step; the blank is one class.

    `blank` is the index of the blank among the outputs (the CTC loss's `blank`), so the output layer and
    the loss agree on it.
    """

    task = "sequence"

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        image_size: int = 32,
        channels: tuple[int, ...] = (16, 32, 64, 64),
        hidden: int = 64,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if image_size < 16 or image_size % 16:
            raise ValueError(f"image_size={image_size}: the image height must be a multiple of 16 (>= 16)")
        if len(channels) != 4:
            raise ValueError(f"channels={list(channels)}: give four conv widths, e.g. [16, 32, 64, 64]")
        c1, c2, c3, c4 = channels
        self.features = nn.Sequential(
            conv_block(in_channels, c1, (2, 2)),  # H/2, W/2
            conv_block(c1, c2, (2, 2)),  # H/4, W/4
            conv_block(c2, c3, (2, 1)),  # H/8, width kept: one column per 4 input pixels
            conv_block(c3, c4, (2, 1)),  # H/16
        )
        self.collapse = nn.Conv2d(c4, c4, (image_size // 16, 1))  # the remaining rows -> 1
        self.dropout = nn.Dropout(dropout)
        self.rnn = nn.GRU(c4, hidden, batch_first=True, bidirectional=True)
        self.classifier = nn.Linear(2 * hidden, num_classes + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        columns = self.collapse(self.features(x)).squeeze(2).transpose(1, 2)  # (N, T, C)
        steps, _ = self.rnn(self.dropout(torch.relu(columns)))
        return self.classifier(self.dropout(steps))
