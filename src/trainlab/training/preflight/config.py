"""Checks of the composed config against what the run will read and do, before anything trains.

Each check raises a ConfigError naming the key to change (with the nearest valid name where one was
misspelled), or logs one warning for a setting that is legal but rarely meant.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as L
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

import trainlab.conf
from trainlab.core.metrics import higher_is_better
from trainlab.errors import ConfigError, nearest

log = logging.getLogger("trainlab.training.preflight")


def primary_keys() -> set[str]:
    """The top-level keys a run reads: conf/train.yaml's own keys and its config groups."""
    node = OmegaConf.load(Path(trainlab.conf.__file__).parent / "train.yaml")
    keys = {str(key) for key in node if key != "defaults"}
    for entry in node.get("defaults", []):
        if isinstance(entry, str):
            keys.add(entry)
        else:
            keys.update(str(key).removeprefix("override ").strip() for key in entry)
    return keys - {"_self_"}


def interpolated_keys(cfg: DictConfig) -> set[str]:
    """Top-level keys that interpolations of the config (or of Hydra's, e.g. a sweep's subdir) read:
    `+stop=5` is read when some value says `${stop}`."""
    text = OmegaConf.to_yaml(cfg)
    if HydraConfig.initialized():
        text += OmegaConf.to_yaml(HydraConfig.get())
    return set(re.findall(r"\$\{([A-Za-z_]\w*)", text))


def check_every_key_is_read(cfg: DictConfig) -> None:
    """A top-level key that no part of the run reads (added with `+key=value`) changes nothing: say so,
    with the key or config group it was probably meant for."""
    known = primary_keys()
    extra = [key for key in cfg if key not in known]
    read = interpolated_keys(cfg) if extra else set()
    for key in extra:
        if key in read:
            continue
        value = cfg.get(key)
        shown = f"{key}={OmegaConf.to_yaml(value).strip() if OmegaConf.is_config(value) else value}"
        close = nearest(str(key), known)
        hint = f" Did you mean {close}={value}?" if close and not OmegaConf.is_config(value) else ""
        if close and not hint:
            hint = f" Did you mean {close}?"
        raise ConfigError(
            f"{shown} (added with +{key}=...) is a key no part of trainlab reads, so it would change "
            f"nothing.{hint} The top-level keys and config groups: {', '.join(sorted(known))}."
        )


def check_trains_something(trainer: L.Trainer, steps_per_epoch: int) -> None:
    """A run that would take no training step ends as if it had trained: refuse it."""
    if trainer.max_epochs == 0:
        raise ConfigError(
            "trainer.max_epochs=0 trains nothing (the untrained weights would be tested and saved as the "
            "run's result). Set trainer.max_epochs to 1 or more; to evaluate a checkpoint use "
            "`python -m trainlab.eval CKPT`."
        )
    if trainer.max_steps == 0:
        raise ConfigError("trainer.max_steps=0 trains nothing: set it to 1 or more, or -1 for no limit.")
    if steps_per_epoch == 0:
        raise ConfigError(
            f"trainer.limit_train_batches={trainer.limit_train_batches} leaves no training batch in an "
            "epoch: use a fraction above 0 or a number of batches >= 1 (null: all)."
        )


def validation_runs(trainer: L.Trainer) -> bool:
    """Whether any epoch of the run validates (limit_val_batches=0 and a cadence longer than the run
    mean none does)."""
    limit = trainer.limit_val_batches
    if limit is not None and float(limit) == 0:
        return False
    every = trainer.check_val_every_n_epoch
    max_epochs = trainer.max_epochs
    return every is None or max_epochs is None or max_epochs < 0 or every <= max_epochs


def follow_validation_cadence(cfg: DictConfig, trainer: L.Trainer) -> None:
    """A scheduler watching a val/ metric can only step in epochs that validate: with
    trainer.check_val_every_n_epoch=N, a frequency of 1 becomes N (recorded in the config), any other
    frequency must be a multiple of N."""
    node = cfg.get("scheduler")
    monitor = node.get("monitor") if isinstance(node, DictConfig) else None
    every = trainer.check_val_every_n_epoch or 1
    if not isinstance(monitor, str) or not monitor.startswith("val/") or every == 1:
        return
    if node.get("interval", "epoch") != "epoch":
        return  # refused by check_monitors: a val/ metric is never there at every step
    frequency = int(node.get("frequency") or 1)
    if frequency == 1:
        with open_dict(cfg):
            cfg.scheduler.frequency = every
        log.info(
            "scheduler.frequency=%d: scheduler.monitor=%s exists only in the epochs that validate "
            "(trainer.check_val_every_n_epoch=%d)",
            every,
            monitor,
            every,
        )
    elif frequency % every:
        raise ConfigError(
            f"scheduler.frequency={frequency} steps the scheduler in epochs without validation "
            f"(trainer.check_val_every_n_epoch={every}), where scheduler.monitor={monitor} does not exist: "
            f"use a multiple of {every}, e.g. scheduler.frequency={every}."
        )


def monitors(cfg: DictConfig) -> dict[str, tuple[str, Mapping[str, Any]]]:
    """Every `monitor` the run's callbacks and scheduler watch: config key -> (metric name, its node)."""
    found: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for name, node in (cfg.get("callbacks") or {}).items():
        if isinstance(node, DictConfig) and isinstance(node.get("monitor"), str):
            found[f"callbacks.{name}.monitor"] = (node.monitor, node)
    scheduler = cfg.get("scheduler")
    if isinstance(scheduler, DictConfig) and isinstance(scheduler.get("monitor"), str):
        found["scheduler.monitor"] = (scheduler.monitor, scheduler.get("scheduler") or {})
    return found


def check_monitors(cfg: DictConfig, logged: Mapping[str, Iterable[str]], trainer: L.Trainer) -> None:
    """Every monitored name is one the module logs, when the watcher reads it.

    `logged` maps when a name is logged to the names: "epoch" (after each training epoch with its
    validation), "step" (every optimizer step), "test" (only when testing).
    """
    epoch, step, test = (set(logged.get(kind, ())) for kind in ("epoch", "step", "test"))
    during_fit = epoch | step
    for key, (metric, node) in monitors(cfg).items():
        if metric not in during_fit:
            close = nearest(metric, during_fit)
            why = "is logged only when testing, after training" if metric in test else "is never logged"
            owner = "the scheduler" if key.startswith("scheduler") else key.rsplit(".", 1)[0]
            raise ConfigError(
                f"{key}={metric} {why}, so {owner} would fail after the first epoch."
                f"{f' Did you mean {key}={close}?' if close else ''} The run logs: "
                f"{', '.join(sorted(epoch))} (each epoch), {', '.join(sorted(step))} (each step)."
            )
        if (
            key == "scheduler.monitor"
            and cfg.scheduler.get("interval", "epoch") == "step"
            and metric not in step
        ):
            raise ConfigError(
                f"scheduler.monitor={metric} is logged once per epoch, but scheduler.interval=step steps the "
                f"scheduler at every optimizer step: use scheduler.interval=epoch, or monitor one of "
                f"{', '.join(sorted(step))}."
            )
        if metric.startswith("val/") and not validation_runs(trainer):
            settings = (
                f"trainer.limit_val_batches={trainer.limit_val_batches}, trainer.check_val_every_n_epoch="
                f"{trainer.check_val_every_n_epoch}, trainer.max_epochs={trainer.max_epochs}"
            )
            raise ConfigError(
                f"{key}={metric} needs validation, which this run never does ({settings}): validate, or "
                "monitor a train/ metric."
            )
        warn_on_direction(key, metric, node)


MEANING = {
    "patience": "validations without improvement before stopping",
    "min_delta": "the smallest change of the metric that counts as an improvement",
}


def check_callback_settings(cfg: DictConfig) -> None:
    """The settings of monitoring callbacks that their classes would refuse only once built (a raw
    Lightning error) or not at all (a negative patience stops after the first epoch that does not improve)."""
    for name, node in (cfg.get("callbacks") or {}).items():
        if isinstance(node, DictConfig) and str(node.get("_target_", "")).endswith(
            "StochasticWeightAveraging"
        ):
            check_swa_settings(name, node, cfg.trainer.get("max_epochs"))
        if not isinstance(node, DictConfig) or not isinstance(node.get("monitor"), str):
            continue
        mode = node.get("mode")
        if mode is not None and mode not in ("min", "max"):
            raise ConfigError(
                f"callbacks.{name}.mode={mode}: use min (a loss: lower is better) or max (an accuracy)."
            )
        for key in ("patience", "min_delta"):
            value = node.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                meaning = MEANING[key]
                raise ConfigError(f"callbacks.{name}.{key}={value}: it must be a number >= 0 ({meaning}).")
            if key == "patience" and value != int(value):
                raise ConfigError(
                    f"callbacks.{name}.patience={value}: a whole number of validations, e.g. 3."
                )


def check_swa_settings(name: str, node: DictConfig, max_epochs: int | None) -> None:
    """SWA's start, lr and annealing, which Lightning checks only once fit has begun (or not at all: a
    start after the last epoch averages nothing)."""
    start, lrs = node.get("swa_epoch_start"), node.get("swa_lrs")
    where = f"callbacks.{name}"
    if isinstance(start, bool) or not isinstance(start, int | float):
        raise ConfigError(
            f"{where}.swa_epoch_start={start}: an epoch number (2) or a share of the run (0.75)."
        )
    if isinstance(start, float) and not 0 < start <= 1:
        raise ConfigError(f"{where}.swa_epoch_start={start}: a share of trainer.max_epochs is in (0, 1].")
    if isinstance(start, int) and (start < 1 or (max_epochs not in (None, -1) and start > max_epochs)):
        raise ConfigError(
            f"{where}.swa_epoch_start={start}: SWA would average nothing; use an epoch from 1 to "
            f"trainer.max_epochs={max_epochs} (1-based), or a share of the run such as 0.75."
        )
    values = lrs if isinstance(lrs, Sequence) and not isinstance(lrs, str) else [lrs]
    if not values or any(isinstance(v, bool) or not isinstance(v, int | float) or v <= 0 for v in values):
        raise ConfigError(f"{where}.swa_lrs={lrs}: a learning rate > 0 (or one per param group).")
    if node.get("annealing_strategy") not in ("cos", "linear"):
        raise ConfigError(f"{where}.annealing_strategy={node.get('annealing_strategy')}: use cos or linear.")


def warn_on_direction(key: str, metric: str, node: Mapping[str, Any]) -> None:
    """mode=max on a loss (or min on an accuracy) keeps the worst epoch: legal, rarely meant."""
    mode = node.get("mode")
    better = higher_is_better(metric)
    if mode not in ("min", "max") or better is None or (mode == "max") == better:
        return
    owner = key.rsplit(".", 1)[0]
    node_key = "scheduler.scheduler.mode" if owner == "scheduler" else f"{owner}.mode"
    log.warning(
        "%s=%s with %s=%s: %s is better when %s, so this %s the worst epochs; set %s=%s if that was not "
        "meant",
        node_key,
        mode,
        key,
        metric,
        metric,
        "higher" if better else "lower",
        "keeps" if owner.startswith("callbacks") else "rewards",
        node_key,
        "max" if better else "min",
    )


def record_effective_data(cfg: DictConfig, datamodule: Any) -> None:
    """Write the class count the data has into cfg.data.num_classes (null for a folder whose classes are
    discovered), so config.yaml states it and a checkpoint's config rebuilds the same network."""
    with open_dict(cfg):
        cfg.data.num_classes = datamodule.num_classes


def record_effective_trainer(cfg: DictConfig, trainer: L.Trainer) -> None:
    """Write what Lightning resolved (accelerator, devices, strategy, precision) into cfg.trainer, so
    config.yaml, HPARAMS and the console state what runs; say so where it differs from what was asked."""
    effective = {
        "accelerator": type(trainer.accelerator).__name__.removesuffix("Accelerator").lower(),
        "devices": trainer.num_devices,
        "strategy": getattr(trainer.strategy, "strategy_name", type(trainer.strategy).__name__),
        "precision": str(trainer.precision),
    }
    changed = []
    with open_dict(cfg):
        for key, value in effective.items():
            asked = cfg.trainer.get(key)
            if str(asked) != str(value):
                cfg.trainer[key] = value
                changed.append(f"trainer.{key}={asked} -> {value}")
    if changed:
        reason = ""
        if any("=16-mixed -> bf16-mixed" in change for change in changed):
            reason = " (float16 autocast needs a CUDA GPU; on a CPU Lightning runs bfloat16)"
        log.info("Lightning resolved %s%s; config.yaml records these", ", ".join(changed), reason)
