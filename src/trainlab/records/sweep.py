"""Sweep results table: <sweep dir>/summary.csv and summary.md, one row per job, best first.

The table is rebuilt from the job dirs themselves after every job, not from memory: it is right after
each job (a partial sweep has a table), for any launcher (jobs in other processes or machines), and for
any sweeper (grid or Optuna trials alike).
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from trainlab.atomic import atomic_write_csv, atomic_write_text
from trainlab.records.catalog import RunRecord, find_runs, rank
from trainlab.records.files import TRACKERS_FILE, mlflow_ui_command, tensorboard_command
from trainlab.records.status import mark_finished, read_status

COLUMNS = (
    "job",
    "overrides",
    "status",
    "val/acc_best",
    "val/acc",
    "val/acc_top5",
    "test/acc",
    "epochs",
    "wall_s",
    "run_dir",
)


def sweep_records(sweep_dir: Path) -> list[RunRecord]:
    """The jobs of a sweep that have started, best first (failed and unfinished ones last)."""
    return rank(r for r in find_runs(sweep_dir) if r.run_dir != sweep_dir)


def row(record: RunRecord) -> dict[str, Any]:
    values: dict[str, Any] = {
        "job": record.job,
        "overrides": " ".join(record.overrides),
        "status": record.status,
        "epochs": record.metrics.get("epochs"),
        "wall_s": record.duration_s,
        "run_dir": str(record.run_dir),
        "error": record.error or "",
    }
    for key in ("val/acc_best", "val/acc", "val/acc_top5", "test/acc"):
        values[key] = record.metric(key)  # None (an empty cell) where the run has no such metric
    return values


def write_sweep_summary(sweep_dir: Path) -> list[RunRecord]:
    records = sweep_records(sweep_dir)
    rows = [row(r) for r in records]
    atomic_write_csv(sweep_dir / "summary.csv", rows, fieldnames=[*COLUMNS, "error"])
    atomic_write_text(sweep_dir / "summary.md", to_markdown(rows, sweep_dir))
    return records


def to_markdown(rows: list[dict[str, Any]], sweep_dir: Path) -> str:
    shown = [c for c in COLUMNS if c != "run_dir"] + ["error"]
    lines = [
        f"# Sweep {sweep_dir}",
        "",
        f"{len(rows)} jobs, best first by val/acc_best. Curves: `tensorboard --logdir {sweep_dir}`",
        "",
        "| " + " | ".join(shown) + " |",
        "|" + "---|" * len(shown),
    ]
    for values in rows:
        lines.append("| " + " | ".join(_cell(c, values[c]) for c in shown) + " |")
    return "\n".join(lines) + "\n"


def _cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        text = f"{value:.1f}" if column == "wall_s" else f"{value:.4f}"
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def sweep_views(sweep_dir: Path, records: list[RunRecord]) -> list[str]:
    """The commands that show the sweep's jobs side by side: TensorBoard where they wrote event files,
    MLflow's UI where they were recorded in a local MLflow store."""
    views = []
    if any((r.run_dir / "tensorboard").is_dir() for r in records):
        views.append(tensorboard_command(sweep_dir))
    stores = set()
    for record in records:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stores.add(json.loads((record.run_dir / TRACKERS_FILE).read_text())["mlflow"]["tracking_uri"])
    views += [
        f"{mlflow_ui_command(uri)} (experiment {sweep_dir})"
        for uri in sorted(s for s in stores if isinstance(s, str) and s.startswith("sqlite:"))
    ]
    return views


class SweepSummary(Callback):
    """Hydra callback (conf/hydra/default.yaml): refresh the sweep's table as each job ends."""

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            return
        run_dir = Path(HydraConfig.get().runtime.output_dir)
        if job_return.status == JobStatus.FAILED and (read_status(run_dir) or {}).get("status") != "failed":
            # failed outside trainlab's own handling (e.g. a config that did not resolve)
            try:
                job_return.return_value  # noqa: B018 - re-raises the job's exception
            except Exception as error:  # the job's own failure, recorded rather than raised here
                mark_finished(run_dir, "failed", f"{type(error).__name__}: {error}")
        write_sweep_summary(Path(config.hydra.sweep.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        records = write_sweep_summary(sweep_dir)
        failed = sum(r.status != "completed" for r in records)
        best = records[0] if records and records[0].metric("val/acc_best") is not None else None
        message = f"sweep summary: {sweep_dir / 'summary.md'} ({len(records)} jobs, {failed} not completed)"
        if best is not None:
            message += (
                f"; best: job {best.job} ({' '.join(best.overrides)}) "
                f"val/acc_best={best.metric('val/acc_best'):.4f}, checkpoint {best.best_ckpt}"
            )
        print(f"trainlab: {message}{''.join(f' | view: {view}' for view in sweep_views(sweep_dir, records))}")
        failures = [r for r in records if r.status == "failed"]
        if failures:
            named = "; ".join(f"job {r.job} ({' '.join(r.overrides)}): {r.error}" for r in failures)
            print(
                f"error: {len(failures)} of {len(records)} sweep jobs failed, the others ran. {named} "
                f"Rows and errors: {sweep_dir / 'summary.md'}.",
                file=sys.stderr,
            )
            sys.exit(1)
