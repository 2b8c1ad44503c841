"""The run's objects from its config: datamodule, trainer (callbacks, loggers, checkpoint I/O), module,
and the schedule lengths derived from the run's real length."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as L
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf, open_dict

from trainlab.callbacks.interrupt import CheckpointOnSignal
from trainlab.callbacks.progress import ThrottledProgressBar
from trainlab.checkpoints.io import AtomicCheckpointIO
from trainlab.core.build import (
    build,
    chosen_option,
    where_defined,
)
from trainlab.core.distributed import SameConfigOnRanks, use_hydra_job_launcher
from trainlab.core.module import ClassifierModule
from trainlab.data.base import ImageDataModule
from trainlab.errors import ConfigError
from trainlab.loggers.hparams import CHOICE_GROUPS, run_hparams
from trainlab.losses import LossAdapter
from trainlab.optim.schedulers import RunLength, resolve_lengths
from trainlab.training.preflight.objects import (
    check_model_fits_data,
    check_optimizer_and_scheduler,
    task_mismatch,
)

log = logging.getLogger(__name__)


def prepare_data(cfg: DictConfig) -> ImageDataModule:
    """Find and check the dataset before anything else."""
    datamodule = build("data", cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


def build_module(cfg: DictConfig, datamodule: ImageDataModule) -> ClassifierModule:
    net = build("model", cfg.model)  # its ${data.num_classes}: see preflight.config.record_effective_data
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


def build_loss(cfg: DictConfig, datamodule: ImageDataModule) -> LossAdapter:
    loss = build("loss", cfg.loss, num_classes=datamodule.num_classes, class_counts=datamodule.class_counts)
    if loss.task != datamodule.task:
        raise task_mismatch("loss", loss.task, datamodule.task)
    return loss


def build_trainer(cfg: DictConfig, datamodule: ImageDataModule) -> L.Trainer:
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
    accumulate = int(trainer.accumulate_grad_batches)
    # a batch that does not split over devices and micro-batches fails here, before any launch
    micro = datamodule.per_device_batch_size(trainer.world_size, accumulate)
    if trainer.world_size > 1 or accumulate > 1:
        log.info(
            "%d device(s) (%d per node x %d nodes): global batch %d = %d per device%s",
            trainer.world_size,
            trainer.num_devices,
            trainer.num_nodes,
            datamodule.batch_size,
            micro * accumulate,
            f" = {accumulate} micro-batches of {micro} (trainer.accumulate_grad_batches)"
            if accumulate > 1
            else "",
        )
    return trainer


def resolved_config_and_hparams(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    resolved = OmegaConf.to_container(cfg, resolve=True)
    return resolved, run_hparams(resolved, chosen_options(), task_overrides())


def run_length(trainer: L.Trainer, datamodule: ImageDataModule) -> RunLength:
    """The run's length as Lightning will train it (its `estimated_stepping_batches`), known before fit."""
    accumulate = max(int(trainer.accumulate_grad_batches), 1)
    batches = datamodule.train_batches_per_epoch(trainer.world_size, accumulate)
    limit = trainer.limit_train_batches
    if isinstance(limit, int) and not isinstance(limit, bool):
        batches = min(batches, limit)
    elif limit is not None:
        batches = int(batches * float(limit))
    epochs = trainer.max_epochs if trainer.max_epochs is not None and trainer.max_epochs >= 0 else None
    steps_per_epoch = -(-batches // accumulate)
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


def task_overrides() -> list[str]:
    """The job's command-line overrides (in a sweep: its share of the sweep), [] outside Hydra."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def chosen_options() -> dict[str, str | None]:
    return {group: chosen_option(group) for group in CHOICE_GROUPS}
