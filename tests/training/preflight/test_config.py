"""Config checks against what the run reads and does: keys, run length, monitors, resolved settings."""

from __future__ import annotations

import logging

import lightning.pytorch as L
import pytest
from omegaconf import OmegaConf, open_dict

from configs import compose_train
from trainlab.errors import ConfigError
from trainlab.training.preflight.config import (
    check_callback_settings,
    check_every_key_is_read,
    check_monitors,
    check_trains_something,
    follow_validation_cadence,
    primary_keys,
    record_effective_trainer,
)

LOGGED = {
    "epoch": ["train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best"],
    "step": ["train/loss_step", "lr/default"],
    "test": ["test/loss", "test/acc"],
}


def trainer(**kwargs) -> L.Trainer:
    return L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, **kwargs)


def test_the_keys_a_run_reads_are_train_yamls_keys_and_groups(tmp_path):
    keys = primary_keys()
    assert {"data", "model", "loss", "optim", "scheduler", "trainer", "seed", "ckpt_path", "tta"} <= keys
    cfg = compose_train(tmp_path)
    check_every_key_is_read(cfg)  # every shipped key is read
    for option in ("experiment=cifar10_fast", "optim=rprop", "hparams_search=optuna"):
        check_every_key_is_read(compose_train(tmp_path, option))  # global packages add no stray keys
    with pytest.raises(
        ConfigError, match=r"^optimizer=adam \(added with \+optimizer=...\) .* Did you mean optim=adam"
    ):
        check_every_key_is_read(compose_train(tmp_path, "+optimizer=adam"))
    check_every_key_is_read(compose_train(tmp_path, "+stop=5", "trainer.max_steps=${stop}"))  # read


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_epochs": 0}, "trainer.max_epochs=0 trains nothing"),
        ({"max_steps": 0}, "trainer.max_steps=0 trains nothing"),
        ({"limit_train_batches": 0}, "trainer.limit_train_batches=0 leaves no training batch"),
    ],
)
def test_a_run_that_would_train_nothing_is_refused(settings, message):
    steps = 0 if "limit_train_batches" in settings else 10
    with pytest.raises(ConfigError, match=message):
        check_trains_something(trainer(**settings), steps)
    check_trains_something(trainer(max_epochs=1), 10)


def test_a_plateau_scheduler_steps_in_the_epochs_that_validate(tmp_path):
    cfg = compose_train(tmp_path, "scheduler=plateau", "trainer.check_val_every_n_epoch=3")
    follow_validation_cadence(cfg, trainer(check_val_every_n_epoch=3))
    assert cfg.scheduler.frequency == 3
    cfg = compose_train(tmp_path, "scheduler=plateau", "scheduler.frequency=6")
    follow_validation_cadence(cfg, trainer(check_val_every_n_epoch=3))
    assert cfg.scheduler.frequency == 6  # a multiple: kept
    cfg = compose_train(tmp_path, "scheduler=plateau", "scheduler.monitor=train/loss")
    follow_validation_cadence(cfg, trainer(check_val_every_n_epoch=3))
    assert cfg.scheduler.frequency == 1  # train/ metrics exist every epoch
    cfg = compose_train(tmp_path, "scheduler=plateau", "scheduler.frequency=2")
    with pytest.raises(ConfigError, match=r"scheduler.frequency=2 steps the scheduler in epochs without"):
        follow_validation_cadence(cfg, trainer(check_val_every_n_epoch=3))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["callbacks.best_checkpoint.monitor=val/accuracy"],
            "Did you mean callbacks.best_checkpoint.monitor=val/acc?",
        ),
        (["callbacks.best_checkpoint.monitor=test/acc"], "is logged only when testing"),
        (["scheduler=plateau", "scheduler.monitor=val_loss"], "Did you mean scheduler.monitor=val/loss?"),
        (["scheduler=plateau", "scheduler.interval=step"], "scheduler.interval=step steps the scheduler"),
    ],
)
def test_monitors_name_metrics_the_module_logs(tmp_path, overrides, message):
    cfg = compose_train(tmp_path, *overrides)
    with pytest.raises(ConfigError, match=message.replace("?", r"\?")):
        check_monitors(cfg, LOGGED, trainer())


def test_a_val_monitor_without_validation_is_refused_and_a_train_monitor_is_not(tmp_path):
    cfg = compose_train(tmp_path)
    with pytest.raises(ConfigError, match="needs validation, which this run never does"):
        check_monitors(cfg, LOGGED, trainer(limit_val_batches=0))
    check_monitors(cfg, LOGGED, trainer())
    with open_dict(cfg):
        cfg.callbacks.best_checkpoint.monitor = "train/acc"
    check_monitors(cfg, LOGGED, trainer(limit_val_batches=0))


def preflight_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "trainlab.training.preflight"]


def test_a_monitor_mode_against_the_metrics_direction_warns(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="trainlab.training.preflight")
    cfg = compose_train(tmp_path, "callbacks.best_checkpoint.monitor=val/loss")  # mode stays max
    check_monitors(cfg, LOGGED, trainer())
    (line,) = preflight_lines(caplog)
    assert line.startswith(
        "callbacks.best_checkpoint.mode=max with callbacks.best_checkpoint.monitor=val/loss"
    )
    caplog.clear()
    check_monitors(compose_train(tmp_path), LOGGED, trainer())
    assert preflight_lines(caplog) == []


def test_what_lightning_resolves_is_written_into_the_config(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="trainlab.training.preflight")
    cfg = compose_train(tmp_path, "trainer.precision=16-mixed")
    record_effective_trainer(cfg, trainer(precision="16-mixed"))
    assert OmegaConf.to_container(cfg.trainer)["precision"] == "bf16-mixed"
    assert (cfg.trainer.accelerator, cfg.trainer.devices, cfg.trainer.strategy) == ("cpu", 1, "single_device")
    (line,) = preflight_lines(caplog)
    assert "trainer.precision=16-mixed -> bf16-mixed (float16 autocast needs a CUDA GPU" in line


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("callbacks.early_stopping.patience=-1", "patience=-1: it must be a number >= 0"),
        ("callbacks.early_stopping.patience=2.5", "patience=2.5: a whole number of validations"),
        ("callbacks.early_stopping.min_delta=-0.1", "min_delta=-0.1: it must be a number >= 0"),
        ("callbacks.early_stopping.mode=maximum", "mode=maximum: use min (a loss: lower is better) or max"),
        ("callbacks.best_checkpoint.mode=best", "callbacks.best_checkpoint.mode=best: use min"),
    ],
)
def test_monitoring_callbacks_settings_are_refused_before_anything_is_built(tmp_path, override, message):
    cfg = compose_train(tmp_path, "callbacks=early_stopping", override)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_callback_settings(cfg)


def test_the_shipped_monitoring_callbacks_pass(tmp_path):
    check_callback_settings(compose_train(tmp_path, "callbacks=early_stopping"))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("callbacks.swa.swa_epoch_start=11", "swa_epoch_start=11: SWA would average nothing"),
        ("callbacks.swa.swa_epoch_start=0", "swa_epoch_start=0: SWA would average nothing"),
        ("callbacks.swa.swa_epoch_start=1.5", "swa_epoch_start=1.5: a share of trainer.max_epochs"),
        ("callbacks.swa.swa_lrs=0", "swa_lrs=0: a learning rate > 0"),
        ("callbacks.swa.annealing_strategy=step", "annealing_strategy=step: use cos or linear"),
    ],
)
def test_swa_settings_are_refused_before_anything_is_built(tmp_path, override, message):
    cfg = compose_train(tmp_path, "callbacks=swa", "trainer.max_epochs=10", override)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_callback_settings(cfg)
    check_callback_settings(compose_train(tmp_path, "callbacks=swa", "trainer.max_epochs=10"))
