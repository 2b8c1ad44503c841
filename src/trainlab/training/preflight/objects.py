"""The built objects checked against each other before training: the model against the data (one real
image), the loss's and model's task against the data's, the optimizer and scheduler built once, and the
checkpoint to resume from matched to this run."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
from lightning.pytorch.callbacks import BaseFinetuning
from omegaconf import DictConfig, OmegaConf

from trainlab.checkpoints.resume import check_checkpoint_fits, checkpoint_to_resume
from trainlab.compat import checkpoint_position
from trainlab.core.build import (
    chosen_option,
    config_error,
    shipped_options_for,
    unexpected_key_hint,
)
from trainlab.core.module import ClassifierModule
from trainlab.data.base import ImageDataModule
from trainlab.errors import ConfigError
from trainlab.optim.checks import check_gradient_kinds
from trainlab.optim.schedulers import build_scheduler

log = logging.getLogger(__name__)


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


def check_model_fits_data(net: torch.nn.Module, datamodule: ImageDataModule) -> None:
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
