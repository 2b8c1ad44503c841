"""TensorBoard extras beyond scalars: histograms, figures, the HPARAMS row and the run's text pages.

Lightning's self.log handles scalars; these write through the SummaryWriter of every TensorBoardLogger
of the run, on rank zero only.
"""

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


def log_histogram(module: L.LightningModule, tag: str, values: torch.Tensor) -> None:
    """Add a histogram at the current global step to every TensorBoard logger of the run."""
    for writer in summary_writers(module.trainer):
        writer.add_histogram(tag, values.float().cpu(), global_step=module.global_step)


def log_figure(trainer: L.Trainer, tag: str, figure: Figure, step: int) -> None:
    """A matplotlib figure as an image; the caller keeps ownership of (and closes) the figure."""
    for writer in summary_writers(trainer):
        writer.add_figure(tag, figure, global_step=step, close=False)


def log_run_overview(
    trainer: L.Trainer, hparams: Mapping[str, Any], config_yaml: str, provenance: Mapping[str, Any]
) -> None:
    """The HPARAMS row (groups, key options, result metrics) and the config and provenance as text."""
    experiment, session_start, session_end = hparams_summaries(
        dict(hparams), dict.fromkeys(HPARAM_METRICS, 0.0)
    )
    for writer in summary_writers(trainer):
        file_writer = tensorboard_file_writer(writer)
        for summary in (experiment, session_start, session_end):
            file_writer.add_summary(summary)
        writer.add_text("config", _code_block(config_yaml), global_step=0)
        writer.add_text("provenance", _code_block(json.dumps(provenance, indent=2)), global_step=0)
        writer.flush()


def _code_block(text: str) -> str:
    """Indented by four spaces: TensorBoard renders text as Markdown, this keeps YAML/JSON verbatim."""
    return "\n".join("    " + line for line in text.splitlines())
