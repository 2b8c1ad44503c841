"""The run's learning curves as plain numbers: what curves.png is drawn from, carried in checkpoints.

TensorBoard holds the same values, but a run may have no TensorBoard logger, and a run resumed into a
new directory has only part of them there; the history travels inside every checkpoint instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class MetricHistory:
    """Epoch means per stage (`train`, `val`) and the training loss at the logging cadence.

    Step losses are kept as detached tensors until the epoch ends, so recording them never forces the
    host to wait for the device.
    """

    epochs: dict[str, list[dict[str, float]]] = field(default_factory=lambda: {"train": [], "val": []})
    steps: list[tuple[int, float]] = field(default_factory=list)
    _pending_steps: list[tuple[int, torch.Tensor]] = field(default_factory=list, repr=False)

    def add_step(self, step: int, loss: torch.Tensor) -> None:
        self._pending_steps.append((step, loss.detach()))

    def add_epoch(self, stage: str, epoch: int, step: int, loss: torch.Tensor, acc: torch.Tensor) -> None:
        self.flush_steps()
        rows = self.epochs.setdefault(stage, [])
        rows[:] = [row for row in rows if row["epoch"] != epoch]  # a repeated epoch replaces its row
        rows.append({"epoch": epoch, "step": step, "loss": float(loss), "acc": float(acc)})

    def flush_steps(self) -> None:
        self.steps.extend((step, float(loss)) for step, loss in self._pending_steps)
        self._pending_steps.clear()

    def state_dict(self) -> dict[str, Any]:
        """Plain lists and floats, so torch.load(weights_only=True) accepts the checkpoint."""
        self.flush_steps()
        return {"epochs": {k: [dict(r) for r in v] for k, v in self.epochs.items()}, "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epochs = {stage: [dict(row) for row in rows] for stage, rows in state["epochs"].items()}
        self.steps = [(int(step), float(loss)) for step, loss in state["steps"]]
        self._pending_steps.clear()
