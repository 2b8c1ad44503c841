"""TensorBoard beyond scalars: the HPARAMS row, the run's text pages, figures, histograms and the CUSTOM
SCALARS layout, through the SummaryWriter of the run's TensorBoardLogger (Lightning's sends scalars)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import lightning.pytorch as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.figure import Figure
from torch.utils.tensorboard.summary import hparams as hparams_summaries

from trainlab.compat import tensorboard_file_writer
from trainlab.loggers.backend import Backend
from trainlab.loggers.hparams import HPARAM_METRICS


def summary_writers(trainer: L.Trainer) -> Iterator[Any]:
    """The SummaryWriter of each TensorBoard logger, on rank zero (none elsewhere)."""
    if not trainer.is_global_zero:
        return
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            yield logger.experiment


Charts = Mapping[str, Mapping[str, list[str]]]  # {category: {chart title: [tag regexes]}}


def metric_charts(metric_names: Mapping[str, list[str]]) -> dict[str, dict[str, list[str]]]:
    """The run's own CUSTOM SCALARS charts: one per metric with its train, val and test series together
    (`loss`, `acc` with `val/acc_best`, `cer` for sequences), and every param group's learning rate."""
    names = [name for group in ("epoch", "test") for name in metric_names.get(group, [])]
    charts: dict[str, list[str]] = {}
    for name in names:
        stage, _, metric = name.partition("/")
        if stage in ("train", "val", "test") and metric != "skipped_batches":
            key = metric.removesuffix("_best")
            charts.setdefault(key, []).append(f"^{re.escape(name)}$")
    charts["lr"] = ["^lr/"]
    return {"trainlab": charts}


def write_chart_layout(trainer: L.Trainer, *parts: Charts) -> None:
    """One CUSTOM SCALARS layout for the run, from all `parts` (categories of charts, each chart a
    multi-line chart of every tag its regexes match). TensorBoard reads one layout per run, so the parts
    are merged and written once."""
    layout: dict[str, dict[str, list[str]]] = {}
    for part in parts:
        for category, charts in part.items():
            layout.setdefault(category, {}).update({title: list(tags) for title, tags in charts.items()})
    if not layout:
        return
    spec = {
        category: {title: ["Multiline", tags] for title, tags in charts.items()}
        for category, charts in layout.items()
    }
    for writer in summary_writers(trainer):
        writer.add_custom_scalars(spec)


class TensorBoardBackend(Backend):
    """HPARAMS row, config and provenance as text pages, figures as images, histograms."""

    name = "tensorboard"
    takes_figures = True

    def __init__(self, logger: TensorBoardLogger) -> None:
        super().__init__(logger)
        self.writer = logger.experiment

    def overview(
        self,
        resolved: Mapping[str, Any],
        hparams: Mapping[str, Any],
        config_yaml: str,
        provenance: Mapping[str, Any],
    ) -> None:
        self.logger.log_hyperparams(dict(resolved))  # hparams.yaml beside the event files
        experiment, session_start, session_end = hparams_summaries(
            dict(hparams), dict.fromkeys(HPARAM_METRICS, 0.0)
        )
        file_writer = tensorboard_file_writer(self.writer)
        for summary in (experiment, session_start, session_end):
            file_writer.add_summary(summary)
        self.writer.add_text("config", _code_block(config_yaml), global_step=0)
        self.writer.add_text("provenance", _code_block(json.dumps(provenance, indent=2)), global_step=0)
        self.writer.flush()

    def figure(self, tag: str, figure: Figure, step: int) -> None:
        self.writer.add_figure(tag, figure, global_step=step, close=False)

    def histogram(self, tag: str, values: torch.Tensor, step: int) -> None:
        self.writer.add_histogram(tag, values.float().cpu(), global_step=step)


def _code_block(text: str) -> str:
    """Indented by four spaces: TensorBoard renders text as Markdown, this keeps YAML/JSON verbatim."""
    return "\n".join("    " + line for line in text.splitlines())
