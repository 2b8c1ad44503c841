"""What a run reports to its experiment loggers, decided here once for all of them.

Lightning sends every scalar to every logger. Beyond scalars, a run reports the same content to each
logger that can hold it: at start the resolved config as hyperparameters, the comparison row
(trainlab.loggers.hparams), the config file and provenance; while training, figures (confusion matrix,
prediction grid) and histograms; at the end, the run dir's figures, metrics.json and the best checkpoint
as artifacts, and how the run ended (completed, failed with its error, interrupted). Each backend adapter
(`Backend` in trainlab.loggers.backend) only writes what it is handed.

A tracker run (MLflow, W&B) has an id kept in the run dir (trackers.json): a resume of the run continues
that tracker run, with its step count going on, rather than starting another.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
from lightning.pytorch.loggers import Logger, MLFlowLogger, TensorBoardLogger, WandbLogger
from matplotlib.figure import Figure

from trainlab.compat import continue_tracker_run
from trainlab.loggers.backend import Backend
from trainlab.loggers.job import read_tracked_runs, record_tracked_run
from trainlab.loggers.mlflow import MLflowBackend
from trainlab.loggers.tensorboard import TensorBoardBackend
from trainlab.loggers.wandb import WandbBackend

log = logging.getLogger(__name__)

ADAPTERS: tuple[tuple[type[Logger], type[Backend]], ...] = (
    (TensorBoardLogger, TensorBoardBackend),
    (MLFlowLogger, MLflowBackend),
    (WandbLogger, WandbBackend),
)
TRACKERS = {MLFlowLogger: "mlflow", WandbLogger: "wandb"}  # loggers whose runs live outside the run dir


def backends(trainer: L.Trainer) -> list[Backend]:
    """One adapter per logger of the run, on rank zero (none on other ranks: they report nothing)."""
    if not trainer.is_global_zero:
        return []
    return [_adapter(logger)(logger) for logger in trainer.loggers]


def _adapter(logger: Logger) -> type[Backend]:
    for kind, adapter in ADAPTERS:
        if isinstance(logger, kind):
            return adapter
    return Backend


def check_trackers(trainer: L.Trainer) -> None:
    """Preflight: each logger that can check its store reaches it (trainlab's MLflow logger does)."""
    for logger in trainer.loggers:
        check = getattr(logger, "check", None)
        if callable(check):
            check()


def continue_tracked_runs(trainer: L.Trainer, run_dir: Path) -> None:
    """A resume in the run dir continues its MLflow run, in the store it was recorded in, and its online
    W&B run (ids in trackers.json). Offline, W&B cannot add to a run (it ignores `resume`, and `wandb
    sync` of two offline runs of one id keeps only one): an offline resume is a new W&B run."""
    records = read_tracked_runs(run_dir)
    for logger in trainer.loggers:
        name = next((name for kind, name in TRACKERS.items() if isinstance(logger, kind)), None)
        record = records.get(name) or {} if name else {}
        run_id = record.get("run_id")
        if not run_id:
            continue
        if name == "wandb" and getattr(logger, "offline", True):
            log.info("wandb: offline, this resume is a new W&B run (run %s holds the steps before)", run_id)
            continue
        if isinstance(logger, MLFlowLogger) and hasattr(logger, "continue_run"):
            logger.continue_run(str(run_id), record.get("tracking_uri"))
        else:
            continue_tracker_run(logger, str(run_id))
        log.info("%s: continuing run %s (trackers.json in %s)", name, run_id, run_dir)


def report_start(
    trainer: L.Trainer,
    run_dir: Path,
    resolved: Mapping[str, Any],
    hparams: Mapping[str, Any],
    config_yaml: str,
    provenance: Mapping[str, Any],
) -> None:
    """Before training: the run's overview in every logger; tracker run ids into the run dir."""
    for backend in backends(trainer):
        backend.overview(resolved, hparams, config_yaml, provenance)
        tracked = backend.tracked_run()
        if tracked:
            record_tracked_run(run_dir, backend.name, tracked)


def takes_figures(trainer: L.Trainer) -> bool:
    """Whether a logger of the run shows figures (nothing is drawn for loggers that would drop it)."""
    return any(backend.takes_figures for backend in backends(trainer))


def log_figure(trainer: L.Trainer, tag: str, figure: Figure, step: int) -> None:
    """A matplotlib figure into every logger that shows figures; the caller closes the figure."""
    for backend in backends(trainer):
        backend.figure(tag, figure, step)


def log_histogram(module: L.LightningModule, tag: str, values: torch.Tensor) -> None:
    """A histogram at the current global step, into every logger that shows histograms."""
    for backend in backends(module.trainer):
        backend.histogram(tag, values, module.global_step)


def report_end(
    trainer: L.Trainer,
    run_dir: Path,
    status: str,
    message: str | None = None,
    metrics: Mapping[str, Any] | None = None,
) -> None:
    """When the run ends: its `metrics` (metrics.json) as a summary, the run dir's figures and
    metrics.json, the best checkpoint (to loggers set to take it) and the end status with its error."""
    best = (metrics or {}).get("best_ckpt")
    files = [(path, "figures") for path in sorted(run_dir.glob("*.png"))]
    files += [(run_dir / name, "") for name in ("metrics.json",) if (run_dir / name).is_file()]
    for backend in backends(trainer):
        try:
            if metrics:
                backend.summary(metrics)
            for path, folder in files:
                backend.artifact(path, folder)
            if best and Path(best).is_file() and getattr(backend.logger, "log_best_checkpoint", False):
                backend.artifact(Path(best), "checkpoints")
        finally:
            backend.ended(status, message)
