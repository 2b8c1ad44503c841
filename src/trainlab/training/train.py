"""Training entry: preflight (build and check everything), fit, test the best checkpoint, write results.

The pieces live beside it: `assemble` builds data, trainer and module from the config; `preflight/` checks
them; `results` records the run and its metrics; `failures` turns dead ranks, dead workers and signals into
named errors.
"""

from __future__ import annotations

import functools
import logging
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as L
from omegaconf import DictConfig

from trainlab.compat import on_rank_death
from trainlab.core.distributed import distributed_job
from trainlab.core.logs import (
    expect_existing_checkpoints,
    route_lightning_logs_to_hydra,
    silence_known_warnings,
)
from trainlab.core.module import ClassifierModule
from trainlab.core.schema import validate
from trainlab.data.base import ImageDataModule
from trainlab.loggers.report import check_trackers, continue_tracked_runs, report_end
from trainlab.training.assemble import (
    build_module,
    build_trainer,
    derive_schedule,
    last_checkpoint_file,
    prepare_data,
    run_length,
)
from trainlab.training.failures import (
    named_rank_deaths,
    named_worker_deaths,
    refused_at_start,
    report_dead_ranks,
    reported_end,
    stop_if_signalled,
)
from trainlab.training.preflight.config import (
    check_callback_settings,
    check_every_key_is_read,
    check_monitors,
    check_trains_something,
    follow_validation_cadence,
    record_effective_data,
    record_effective_trainer,
)
from trainlab.training.preflight.objects import checked_resume_checkpoint
from trainlab.training.preflight.rehearsal import rehearse
from trainlab.training.results import (
    averages_weights_at_end,
    fit_metrics,
    metrics_on_test_split,
    record_run,
    run_summary,
    saved_checkpoints,
    write_results,
)

log = logging.getLogger(__name__)

silence_known_warnings()


def train(cfg: DictConfig, resume: tuple[Path, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Run one experiment and return the metrics written to <output_dir>/metrics.json.

    `resume`: the (file, contents) that cfg.ckpt_path names, when the caller has read it already.
    """
    started = time.perf_counter()
    output_dir = Path(cfg.paths.output_dir)
    with refused_at_start():
        datamodule, trainer, module = preflight(cfg)
        ckpt_path = checked_resume_checkpoint(cfg, module, trainer, resume)
    log.info(run_summary(cfg, trainer, module, datamodule))
    record_run(cfg, trainer, module, output_dir)
    if trainer.world_size > 1:
        last = last_checkpoint_file(trainer.callbacks, output_dir)
        on_rank_death(functools.partial(report_dead_ranks, output_dir, last))
    resume = None  # Lightning reads the file again; its contents need not stay in memory while training
    with (
        reported_end(trainer, output_dir),
        distributed_job(trainer),
        named_rank_deaths(trainer),
        named_worker_deaths(),
    ):
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        stop_if_signalled(trainer)
        metrics = fit_metrics(trainer, module)
        # read before testing: loading the best checkpoint for the test restores its callbacks' state
        best, last = saved_checkpoints(trainer)
        metrics |= {"best_ckpt": best, "last_ckpt": last}
        if cfg.get("test") and datamodule.has_test_split:
            # SWA's result is the average it leaves in the weights, never a checkpoint of raw weights
            tested = None if averages_weights_at_end(trainer) else best
            metrics |= metrics_on_test_split(trainer, module, datamodule, tested)
            if tested is None:
                metrics["tested_weights"] = "final (the SWA average)"
        metrics = write_results(metrics, trainer, module, datamodule, output_dir, started)
    try:
        report_end(trainer, output_dir, "completed", metrics=metrics)
    except Exception as err:  # the run is complete and recorded in its dir; a tracker gone is a warning
        log.warning("the run completed, but a logger could not record its end: %s", err)
    return metrics


def preflight(cfg: DictConfig) -> tuple[ImageDataModule, L.Trainer, ClassifierModule]:
    """Build the run's objects, checking each against the config as it comes, and rehearse one step of
    each split: every mistake the config can hold stops here, before the run dir holds more than logs."""
    validate(cfg)
    check_every_key_is_read(cfg)
    check_callback_settings(cfg)
    route_lightning_logs_to_hydra()
    L.seed_everything(cfg.seed, workers=True)
    datamodule = prepare_data(cfg)
    record_effective_data(cfg, datamodule)
    checks = Stopwatch()
    with checks:
        datamodule.check_files()
    trainer = build_trainer(cfg, datamodule)
    with checks:
        if cfg.get("ckpt_path"):  # before the check: a continued run is checked in its own store
            continue_tracked_runs(trainer, Path(cfg.paths.output_dir))
            expect_existing_checkpoints()
        check_trackers(trainer)
        record_effective_trainer(cfg, trainer)
        run = run_length(trainer, datamodule)
        check_trains_something(trainer, run.steps_per_epoch)
        follow_validation_cadence(cfg, trainer)
    derive_schedule(cfg, run)
    module = build_module(cfg, datamodule)
    with checks:
        check_monitors(cfg, module.metric_names(), trainer)
        rehearse(module, datamodule, trainer)
    log.info(
        "preflight: data files, keys, monitors and one step of each split checked in %.2f s", checks.total
    )
    return datamodule, trainer, module


class Stopwatch:
    """Seconds spent inside its `with` blocks, added up."""

    total = 0.0

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.total += time.perf_counter() - self._started
