"""Training entry: compose the configured objects, fit, test the best checkpoint, write the run's files."""

from __future__ import annotations

import contextlib
import functools
import logging
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
from lightning.pytorch.callbacks import BaseFinetuning, ModelCheckpoint
from omegaconf import DictConfig, OmegaConf, open_dict

import trainlab
from trainlab.atomic import atomic_write_text
from trainlab.callbacks.interrupt import CheckpointOnSignal
from trainlab.callbacks.progress import ThrottledProgressBar
from trainlab.checkpoints.io import AtomicCheckpointIO
from trainlab.checkpoints.resume import check_checkpoint_fits, checkpoint_to_resume
from trainlab.compat import checkpoint_position, child_rank_processes, on_rank_death
from trainlab.core.build import (
    build,
    chosen_option,
    config_error,
    shipped_options_for,
    unexpected_key_hint,
    where_defined,
)
from trainlab.core.distributed import SameConfigOnRanks, distributed_job, use_hydra_job_launcher
from trainlab.core.logs import route_lightning_logs_to_hydra, silence_known_warnings
from trainlab.core.module import ClassifierModule
from trainlab.core.schema import validate
from trainlab.data.base import ClassificationDataModule
from trainlab.errors import ConfigError, DataError, TrainlabError
from trainlab.loggers.hparams import CHOICE_GROUPS, run_hparams
from trainlab.loggers.tensorboard import log_run_overview
from trainlab.losses import LossAdapter
from trainlab.optim.checks import check_gradient_kinds
from trainlab.optim.schedulers import RunLength, build_scheduler, resolve_lengths
from trainlab.records.files import provenance, to_number, write_json
from trainlab.training.preflight.config import (
    check_every_key_is_read,
    check_monitors,
    check_trains_something,
    follow_validation_cadence,
    record_effective_trainer,
)
from trainlab.training.preflight.rehearsal import rehearse

log = logging.getLogger(__name__)


silence_known_warnings()

METRIC_KEYS = ("train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best")
# sequence tasks: character error rate; nonfinite_loss=skip: batches skipped for a NaN/Inf loss
OPTIONAL_METRIC_KEYS = ("train/cer", "val/cer", "train/skipped_batches")


def prepare_data(cfg: DictConfig) -> ClassificationDataModule:
    """Find and check the dataset before anything else, and record its class count in the config."""
    datamodule = build("data", cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    with open_dict(cfg):
        cfg.data.num_classes = datamodule.num_classes
    return datamodule


def build_module(cfg: DictConfig, datamodule: ClassificationDataModule) -> ClassifierModule:
    net = build("model", cfg.model)
    check_model_fits_data(net, datamodule)
    module = ClassifierModule(
        net=net,
        loss=build_loss(cfg, datamodule),
        **build_optimizer_parts(cfg),
        scheduler=build("scheduler", cfg.scheduler),
        num_classes=cfg.data.num_classes,
        class_names=datamodule.classes,
        config=OmegaConf.to_container(cfg, resolve=True),
        nonfinite_loss=cfg.nonfinite_loss,
        channels_last=cfg.perf.channels_last,
        compile=cfg.perf.compile,
        tta=cfg.tta,
    )
    check_optimizer_and_scheduler(module, cfg)
    return module


def build_optimizer_parts(cfg: DictConfig) -> dict[str, Any]:
    """The torch optimizer partial, and trainlab's own optim keys (param_groups, no_decay) kept apart."""
    node = OmegaConf.to_container(cfg.optim, resolve=True)
    param_groups = node.pop("param_groups", None) or []
    no_decay = bool(node.pop("no_decay", False))
    return {
        "optimizer": build("optim", OmegaConf.create(node)),
        "param_groups": param_groups,
        "no_decay": no_decay,
    }


def build_loss(cfg: DictConfig, datamodule: ClassificationDataModule) -> LossAdapter:
    loss = build("loss", cfg.loss, num_classes=datamodule.num_classes, class_counts=datamodule.class_counts)
    if loss.task != datamodule.task:
        raise task_mismatch("loss", loss.task, datamodule.task)
    return loss


def task_mismatch(group: str, its_task: str, data_task: str) -> ConfigError:
    """data, model and loss each serve one task (classification or sequence); name the ones that fit."""
    return ConfigError(
        f"{group}={chosen_option(group)} is a {group} for {its_task} tasks, but data={chosen_option('data')} "
        f"is a {data_task} dataset. Pick a {data_task} {group}: "
        f"{', '.join(shipped_options_for(group, data_task)) or 'none ships with trainlab'}. "
        f"What fits together: {task_pairs()}."
    )


def task_pairs() -> str:
    """Which shipped data, model and loss options go together, per task, read from the configs."""
    parts = []
    for task in ("classification", "sequence"):
        groups = {group: shipped_options_for(group, task) for group in ("data", "model", "loss")}
        parts.append(f"{task}: " + ", ".join(f"{g}={'|'.join(names)}" for g, names in groups.items()))
    return "; ".join(parts)


def check_model_fits_data(net: torch.nn.Module, datamodule: ClassificationDataModule) -> None:
    """One validation image through the network: a model/data mismatch fails now, in plain words."""
    model_task = getattr(net, "task", "classification")
    if model_task != datamodule.task:
        raise task_mismatch("model", model_task, datamodule.task)
    image = datamodule.example_input()
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            scores = net(image)
    except RuntimeError as err:
        raise ConfigError(
            f"model={chosen_option('model')} cannot take data={chosen_option('data')} images of shape "
            f"{tuple(image.shape[1:])}: {err}. Check model.* and data.image_size / data.in_channels."
        ) from err
    finally:
        net.train(was_training)
    # a classifier scores each class; a sequence model scores each class and the CTC blank per time step
    per_step = datamodule.num_classes + 1
    fits = (
        scores.ndim == 3 and scores.shape[-1] == per_step
        if model_task == "sequence"
        else (tuple(scores.shape) == (1, datamodule.num_classes))
    )
    if not fits:
        expected = f"(steps, {per_step})" if model_task == "sequence" else f"({datamodule.num_classes},)"
        raise ConfigError(
            f"model={chosen_option('model')} outputs scores of shape {tuple(scores.shape[1:])} per image, "
            f"but the data has {datamodule.num_classes} classes, so {expected} is needed. "
            "Leave model.num_classes at ${data.num_classes}."
        )


def check_optimizer_and_scheduler(module: ClassifierModule, cfg: DictConfig) -> None:
    """Build the optimizer and scheduler once up front, so a bad value fails before any training."""
    try:
        optimizer = module.build_optimizer()
    except (TypeError, ValueError) as err:
        raise config_error("optim", err, unexpected_key_hint(err, cfg.optim, "optim")) from err
    check_gradient_kinds(optimizer, module)
    try:
        build_scheduler(module.scheduler_spec, optimizer)
    except (TypeError, ValueError, KeyError) as err:
        raise config_error("scheduler", err) from err


def build_trainer(cfg: DictConfig, datamodule: ClassificationDataModule) -> L.Trainer:
    callbacks = [build("callbacks", node) for node in (cfg.get("callbacks") or {}).values()]
    # Lightning runs checkpoint callbacks in list order: the best-checkpoint ones first, so that the
    # rolling last.ckpt (unmonitored) holds their state after this epoch, not the one before
    callbacks.sort(key=lambda c: isinstance(c, ModelCheckpoint) and c.monitor is None)
    callbacks.append(SameConfigOnRanks(lambda: resolved_config_and_hparams(cfg)))
    if cfg.trainer.get("enable_checkpointing", True):  # a run told not to checkpoint is stopped plainly
        callbacks.append(CheckpointOnSignal(last_checkpoint_file(callbacks, Path(cfg.paths.output_dir))))
    if cfg.trainer.get("enable_progress_bar", True):
        callbacks.append(ThrottledProgressBar())
    loggers = [build("logger", node) for node in (cfg.get("logger") or {}).values()]
    trainer = build(
        "trainer", cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()]
    )
    use_hydra_job_launcher(trainer)
    per_device = datamodule.per_device_batch_size(trainer.world_size)  # a bad split fails before launch
    if trainer.world_size > 1:
        log.info(
            "%d devices (%d per node x %d nodes): global batch %d = %d per device",
            trainer.world_size,
            trainer.num_devices,
            trainer.num_nodes,
            datamodule.batch_size,
            per_device,
        )
    return trainer


def resolved_config_and_hparams(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    resolved = OmegaConf.to_container(cfg, resolve=True)
    return resolved, run_hparams(resolved, chosen_options())


def run_length(trainer: L.Trainer, datamodule: ClassificationDataModule) -> RunLength:
    """The run's length as Lightning will train it (its `estimated_stepping_batches`), known before fit."""
    batches = datamodule.train_batches_per_epoch(trainer.world_size)
    limit = trainer.limit_train_batches
    if isinstance(limit, int) and not isinstance(limit, bool):
        batches = min(batches, limit)
    elif limit is not None:
        batches = int(batches * float(limit))
    epochs = trainer.max_epochs if trainer.max_epochs is not None and trainer.max_epochs >= 0 else None
    steps_per_epoch = -(-batches // max(int(trainer.accumulate_grad_batches), 1))
    return RunLength(epochs=epochs, steps_per_epoch=steps_per_epoch, max_steps=trainer.max_steps)


def derive_schedule(cfg: DictConfig, run: RunLength) -> None:
    """Fill the scheduler's run-length arguments left null from the run's length, into cfg itself, so
    config.yaml, HPARAMS, the checkpoints and the console all state the values that run."""
    with open_dict(cfg):
        try:
            derived = resolve_lengths(cfg.scheduler, run)
        except ConfigError as err:
            raise ConfigError(f"{err} ({where_defined('scheduler')})") from None
    if derived:
        log.info("schedule: %s; the run: %s", ", ".join(derived), run.describe())


def last_checkpoint_file(callbacks: list[Any], output_dir: Path) -> Path:
    """Where the run's rolling `last` checkpoint lives: the unmonitored ModelCheckpoint's file."""
    for callback in callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.monitor is None and callback.dirpath:
            return Path(callback.dirpath) / f"{callback.filename or 'last'}{callback.FILE_EXTENSION}"
    return output_dir / "checkpoints" / "last.ckpt"


def chosen_options() -> dict[str, str | None]:
    return {group: chosen_option(group) for group in CHOICE_GROUPS}


def record_run(cfg: DictConfig, trainer: L.Trainer, output_dir: Path) -> None:
    """Provenance before training: the resolved config and versions in the run dir and in TensorBoard."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    config_yaml = OmegaConf.to_yaml(resolved)
    origin = provenance(cfg.seed, Path(trainlab.__file__).parent)
    if trainer.is_global_zero:
        # .hydra/config.yaml keeps the interpolations; this is what the run actually used
        atomic_write_text(output_dir / "config.yaml", config_yaml)
        write_json(output_dir / "provenance.json", origin)
    for logger in trainer.loggers:
        logger.log_hyperparams(resolved)
    hparams = run_hparams(resolved, chosen_options()) | {"world_size": trainer.world_size}
    log_run_overview(trainer, hparams, config_yaml, origin)


def train(cfg: DictConfig, resume: tuple[Path, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Run one experiment and return the metrics written to <output_dir>/metrics.json.

    `resume`: the (file, contents) that cfg.ckpt_path names, when the caller has read it already.
    """
    started = time.perf_counter()
    output_dir = Path(cfg.paths.output_dir)
    with refused_at_start():
        datamodule, trainer, module = preflight(cfg)
        ckpt_path = checked_resume_checkpoint(cfg, module, trainer, resume)
    record_run(cfg, trainer, output_dir)
    if trainer.world_size > 1:
        on_rank_death(
            functools.partial(
                report_dead_ranks, output_dir, last_checkpoint_file(trainer.callbacks, output_dir)
            )
        )
    resume = None  # Lightning reads the file again; its contents need not stay in memory while training
    with distributed_job(trainer), named_rank_deaths(trainer), named_worker_deaths():
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        stop_if_signalled(trainer)
        metrics: dict[str, Any] = {key: to_number(trainer.callback_metrics.get(key)) for key in METRIC_KEYS}
        metrics.update(
            {
                k: to_number(trainer.callback_metrics[k])
                for k in OPTIONAL_METRIC_KEYS
                if k in trainer.callback_metrics
            }
        )
        metrics["epochs"] = trainer.current_epoch
        best, last = saved_checkpoints(trainer)
        if cfg.get("test") and datamodule.has_test_split:
            results = trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False)
            metrics.update({key: to_number(value) for key, value in (results[0] if results else {}).items()})
    if getattr(datamodule, "skip_bad_images", False):
        metrics["data/skipped_images"] = len(datamodule.skipped_images)
    metrics.setdefault("test/acc", None)
    metrics.setdefault("test/loss", None)
    metrics["best_ckpt"], metrics["last_ckpt"] = best, last
    metrics["wall_s"] = round(time.perf_counter() - started, 3)
    if trainer.is_global_zero:
        write_json(output_dir / "metrics.json", metrics)
        print(summary_line(output_dir, metrics, has_tensorboard=(output_dir / "tensorboard").is_dir()))
    return metrics


def preflight(cfg: DictConfig) -> tuple[ClassificationDataModule, L.Trainer, ClassifierModule]:
    """Build the run's objects, checking each against the config as it comes, and rehearse one step of
    each split: every mistake the config can hold stops here, before the run dir holds more than logs."""
    validate(cfg)
    check_every_key_is_read(cfg)
    route_lightning_logs_to_hydra()
    L.seed_everything(cfg.seed, workers=True)
    datamodule = prepare_data(cfg)
    checks = Stopwatch()
    with checks:
        datamodule.check_files()
    trainer = build_trainer(cfg, datamodule)
    with checks:
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


@contextlib.contextmanager
def refused_at_start() -> Iterator[None]:
    """A user error before training marks the run as refused at start (`at_start`): the run browser
    hides such runs by default, and nothing was trained or logged."""
    try:
        yield
    except TrainlabError as err:
        err.at_start = True  # type: ignore[attr-defined]
        raise


@contextlib.contextmanager
def named_rank_deaths(trainer: L.Trainer) -> Iterator[None]:
    """A rank process that died (killed for memory, by the cluster, kill -9) leaves the others with a
    collective's connection error; name the rank, the last checkpoint and the resume command."""
    try:
        yield
    except Exception as err:
        died = dead_ranks(trainer)
        if not died:
            raise
        raise RankDied(died, last_checkpoint_file(trainer.callbacks, Path(trainer.default_root_dir))) from err


def dead_ranks(trainer: L.Trainer, wait_s: float = 1.0) -> list[tuple[int, int, int]]:
    """(rank, pid, exit code) of the child ranks that ended with an error (a killed one has a negative
    code, the signal); waits up to `wait_s` for a dying one to be reaped."""
    procs = child_rank_processes(trainer)
    deadline = time.monotonic() + wait_s
    while procs:
        died = [(rank, p.pid, p.returncode) for rank, p in enumerate(procs, 1) if p.poll() not in (None, 0)]
        if died or time.monotonic() > deadline:
            return died
        time.sleep(0.05)
    return []


def report_dead_ranks(run_dir: Path, last: Path, died: list[tuple[int, int, int]]) -> None:
    """From the launcher's watcher thread, just before the process ends: the run's status and the one
    paragraph, as a RankDied raised in the main thread would leave them."""
    from trainlab.records.status import mark_finished

    message = str(RankDied(died, last))
    mark_finished(run_dir, "failed", message)
    print(f"error: {message}", file=sys.stderr)


class RankDied(TrainlabError):
    def __init__(self, died: list[tuple[int, int, int]], last: Path) -> None:
        ranks = ", ".join(f"rank {rank} (pid {pid}, {how_it_ended(code)})" for rank, pid, code in died)
        resume = (
            f"The last checkpoint is {last}: the same command plus hydra.run.dir={last.parent.parent} "
            "ckpt_path=last resumes from it."
            if last.is_file()
            else "No checkpoint was written yet: run the command again."
        )
        super().__init__(
            f"{ranks} died, so the other ranks could not go on. {resume} A rank that dies without an error "
            "of its own was usually killed for lack of memory (see `dmesg`) or by the cluster's scheduler."
        )


def how_it_ended(code: int) -> str:
    """A Popen return code in words: negative ones are the signal that killed the process."""
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


@contextlib.contextmanager
def named_worker_deaths() -> Iterator[None]:
    """A DataLoader worker killed outright (out of memory, a crash in native decoding code) leaves
    only torch's 'worker exited unexpectedly'; say what that means and how to see the real error."""
    try:
        yield
    except RuntimeError as err:
        if "DataLoader worker" not in str(err):
            raise
        raise DataError(
            f"{str(err).splitlines()[0].rstrip('. ')}: a data loading process died without an error of its "
            "own, usually killed for lack of memory or by a crash in image decoding. Run with "
            "data.num_workers=0 to load in the main process and see the failing file, or lower "
            "data.num_workers / data.batch_size if memory is short."
        ) from err


def stop_if_signalled(trainer: L.Trainer) -> None:
    """A signal during the last epoch's validation lets fit end; the run still stops, before testing."""
    for callback in trainer.callbacks:
        if isinstance(callback, CheckpointOnSignal) and callback.received:
            raise callback.interrupted(trainer, callback.received, saved=callback.saved)


def checked_resume_checkpoint(
    cfg: DictConfig,
    module: ClassifierModule,
    trainer: L.Trainer,
    found: tuple[Path, dict[str, Any]] | None = None,
) -> str | None:
    """The checkpoint file to resume from, read and matched to this run before training starts."""
    found = found or checkpoint_to_resume(cfg.get("ckpt_path"), Path(cfg.paths.output_dir))
    if found is None:
        return None
    path, checkpoint = found
    check_checkpoint_fits(
        path,
        checkpoint,
        module,
        module.build_optimizer(),
        OmegaConf.to_container(cfg, resolve=True),
        groups_may_grow=any(isinstance(c, BaseFinetuning) for c in trainer.callbacks),
    )
    output_dir = Path(cfg.paths.output_dir)
    if path.resolve().parent.parent == output_dir.resolve():
        log.info("resuming from %s (%s)", path, checkpoint_position(checkpoint))
    else:
        log.info(
            "starting a new run in %s from %s (%s): it keeps its own best checkpoints; no file of the "
            "other run dir is used after this",
            output_dir,
            path,
            checkpoint_position(checkpoint),
        )
    return str(path)


def saved_checkpoints(trainer: L.Trainer) -> tuple[str | None, str | None]:
    """(best by the monitored metric, last) checkpoint files of this run, None where not written."""
    best = last = None
    for callback in trainer.checkpoint_callbacks:
        if not isinstance(callback, ModelCheckpoint):
            continue
        path = callback.best_model_path or None
        if callback.monitor is None:
            last = last or path
        else:
            best = best or path
    return best, last


def summary_line(output_dir: Path, metrics: dict[str, Any], has_tensorboard: bool) -> str:
    def fmt(key: str) -> str:
        value = metrics.get(key)
        return f"{key}={value:.4f}" if isinstance(value, float) else f"{key}=n/a"

    line = f"trainlab: run dir {output_dir} | {fmt('val/acc')} {fmt('val/acc_best')} {fmt('test/acc')}"
    line += " | metrics.json, config.yaml, checkpoints/, train.log there"
    if has_tensorboard:
        line += f" | view: tensorboard --logdir {output_dir / 'tensorboard'}"
    return line
