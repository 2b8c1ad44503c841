"""The tutorials' matplotlib figures, drawn for every run: learning curves, confusion matrix, predictions.

Each function returns a matplotlib Figure, so the same picture goes to a PNG in the run dir and to
TensorBoard's IMAGES tab.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on training machines; must precede pyplot
import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from trainlab.atomic import atomic_write
from trainlab.records.history import MetricHistory

MAX_ANNOTATED_CLASSES = 20  # beyond this the per-cell counts become unreadable


def curves_figure(history: MetricHistory) -> Figure:
    """Loss and accuracy against optimizer steps: training loss per logged step, epoch means of both."""
    history.flush_steps()
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    if history.steps:
        steps, losses = zip(*history.steps, strict=True)
        loss_ax.plot(steps, losses, color="tab:blue", alpha=0.3, linewidth=0.8, label="train (step)")
    for stage, color in (("train", "tab:blue"), ("val", "tab:orange")):
        rows = history.epochs.get(stage, [])
        if not rows:
            continue
        steps = [row["step"] for row in rows]
        loss_ax.plot(steps, [row["loss"] for row in rows], "o-", color=color, label=f"{stage} (epoch)")
        acc_ax.plot(steps, [row["acc"] for row in rows], "o-", color=color, label=stage)
    for ax, name in ((loss_ax, "loss"), (acc_ax, "accuracy")):
        ax.set_xlabel("step")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend()
    acc_ax.set_ylim(-0.02, 1.02)
    _epoch_axis(acc_ax, history.epochs.get("val") or history.epochs.get("train") or [])
    return fig


def _epoch_axis(ax: plt.Axes, rows: Sequence[dict[str, float]]) -> None:
    """A secondary x axis with epoch numbers at the steps where epochs ended."""
    if not rows:
        return
    top = ax.secondary_xaxis("top")
    top.set_xticks([row["step"] for row in rows], [str(int(row["epoch"]) + 1) for row in rows])
    top.set_xlabel("epoch")


def confusion_matrix_figure(matrix: torch.Tensor, classes: Sequence[str], title: str) -> Figure:
    """Rows are true classes, columns predicted; colour is the row fraction, cells show counts."""
    counts = matrix.detach().cpu().long()
    fractions = counts.float() / counts.sum(dim=1, keepdim=True).clamp(min=1)
    size = min(1.0 + 0.5 * len(classes), 14.0)
    fig, ax = plt.subplots(figsize=(size + 1.5, size), layout="constrained")
    image = ax.imshow(fractions.numpy(), cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of the true class")
    ticks = range(len(classes))
    ax.set_xticks(ticks, list(classes), rotation=45, ha="right")
    ax.set_yticks(ticks, list(classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = counts.diag().sum().item() / max(counts.sum().item(), 1)
    ax.set_title(f"{title} (accuracy {accuracy:.4f}, {counts.sum().item()} samples)")
    if len(classes) <= MAX_ANNOTATED_CLASSES:
        for (row, col), count in _cells(counts):
            dark = fractions[row, col] > 0.5
            ax.text(col, row, str(count), ha="center", va="center", color="white" if dark else "black")
    return fig


def _cells(counts: torch.Tensor) -> list[tuple[tuple[int, int], int]]:
    rows, cols = counts.shape
    return [((r, c), int(counts[r, c])) for r in range(rows) for c in range(cols)]


def prediction_grid_figure(
    images: torch.Tensor,
    predicted: Sequence[str],
    true: Sequence[str],
    probabilities: Sequence[float],
    title: str,
    notes: Sequence[str] = (),
) -> Figure:
    """Each image titled 'pred (p) / true', green when right and red when wrong; `notes[i]`, where given,
    heads image i's title (e.g. "most confident mistake").

    Images are shown min-max scaled per image, which undoes any Normalize without knowing its values.
    """
    count = len(images)
    wide = images.shape[-1] > 2 * images.shape[-2]  # e.g. digit strings: fewer, wider cells
    cols = min(count, 4 if wide else 8)
    rows = max(1, -(-count // cols))
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=((3.6 if wide else 1.8) * cols, (1.4 if wide else 2.1) * rows),
        layout="constrained",
        squeeze=False,
    )
    for ax in axes.flat:
        ax.axis("off")
    notes = list(notes) + [""] * (count - len(notes))
    cells = zip(axes.flat, images, predicted, true, probabilities, notes, strict=False)
    for ax, image, pred, label, prob, note in cells:
        pixels, options = _displayable(image)
        ax.imshow(pixels, **options)
        text = f"{pred} ({prob:.2f})\ntrue {label}"
        ax.set_title(
            f"{note}\n{text}" if note else text, fontsize=8, color="green" if pred == label else "red"
        )
    fig.suptitle(title)
    return fig


def _displayable(image: torch.Tensor) -> tuple[Any, dict[str, Any]]:
    """A CHW tensor as an HW (grey) or HWC array for imshow, scaled to [0, 1]."""
    pixels = image.detach().float().cpu()
    low, high = pixels.min(), pixels.max()
    pixels = (pixels - low) / (high - low) if high > low else torch.zeros_like(pixels)
    if pixels.shape[0] == 1:
        return pixels[0].numpy(), {"cmap": "gray", "vmin": 0.0, "vmax": 1.0}
    return pixels.permute(1, 2, 0).numpy(), {}


def save_figure(fig: Figure, path: Path) -> None:
    """Write a PNG atomically (a reader never sees half a file) and free the figure."""
    try:
        atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=100))
    finally:
        plt.close(fig)
