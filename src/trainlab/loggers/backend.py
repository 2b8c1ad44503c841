"""The one interface through which a run reports to an experiment logger (see trainlab.loggers.report).

A backend writes what the report layer hands it into one Lightning logger; Lightning itself sends the
scalars. The base class serves any logger without more to offer (CSV): the resolved config as its
hyperparameters, and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.loggers import Logger
from matplotlib.figure import Figure


class Backend:
    """Writes a run's report into one logger. Every method is called on rank zero only."""

    name = "logger"
    takes_figures = False  # whether figure() writes anything: figures cost time to draw

    def __init__(self, logger: Logger) -> None:
        self.logger = logger

    def overview(
        self,
        resolved: Mapping[str, Any],
        hparams: Mapping[str, Any],
        config_yaml: str,
        provenance: Mapping[str, Any],
    ) -> None:
        """Before training: the resolved config, the comparison row `hparams` (trainlab.loggers.hparams),
        the config as it ran and its provenance."""
        self.logger.log_hyperparams(dict(resolved))

    def figure(self, tag: str, figure: Figure, step: int) -> None:
        """A matplotlib figure at a global step; the caller keeps (and closes) the figure."""

    def histogram(self, tag: str, values: torch.Tensor, step: int) -> None:
        """A tensor's values as a histogram at a global step."""

    def artifact(self, path: Path, folder: str) -> None:
        """A file of the run (a figure, metrics.json, the best checkpoint) under `folder`."""

    def summary(self, metrics: Mapping[str, Any]) -> None:
        """The run's results as metrics.json holds them (epochs trained, wall time, test scores)."""

    def ended(self, status: str, message: str | None) -> None:
        """The run ended: `completed`, `failed` or `interrupted`, with the error that ended it."""

    def tracked_run(self) -> dict[str, Any] | None:
        """What a resume needs to continue this logger's run ({"run_id": ...}), or None: a resume writes
        on in the run dir's own files (TensorBoard, CSV)."""
        return None
