"""What a run leaves behind: provenance before training, metrics.json and the summary line after it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning.pytorch as L
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, StochasticWeightAveraging
from omegaconf import DictConfig, OmegaConf

import trainlab
from trainlab.atomic import atomic_write_text
from trainlab.core.module import ClassifierModule, group_name
from trainlab.data.base import ImageDataModule
from trainlab.loggers.hparams import run_hparams
from trainlab.loggers.job import read_tracked_runs
from trainlab.loggers.report import report_start
from trainlab.loggers.tensorboard import metric_charts, write_chart_layout
from trainlab.records.files import mlflow_ui_command, provenance, tensorboard_command, to_number, write_json
from trainlab.training.assemble import chosen_options, task_overrides


def fit_metrics(trainer: L.Trainer, module: ClassifierModule) -> dict[str, Any]:
    """The last value of every epoch metric the module logs (None where it never logged it), and the
    number of epochs trained."""
    values = trainer.callback_metrics
    metrics = {key: to_number(values.get(key)) for key in module.metric_names()["epoch"]}
    metrics["epochs"] = trainer.current_epoch
    stoppers = [c for c in trainer.callbacks if isinstance(c, EarlyStopping)]
    if stoppers:
        stopped = [c for c in stoppers if has_stopped(c)]
        metrics["stopped_early"] = bool(stopped)
        metrics["stopping_reason"] = stopping_reason(stopped[0]) if stopped else None
    return metrics


def has_stopped(callback: EarlyStopping) -> bool:
    """Lightning 2.5+ names why it stopped (a stop in the first epoch too); before, stopped_epoch > 0."""
    reason = getattr(callback, "stopping_reason", None)
    if reason is not None:
        return reason.name != "NOT_STOPPED"
    return callback.stopped_epoch > 0


def stopping_reason(callback: EarlyStopping) -> str:
    """Lightning's own message (2.5+), else one built from the callback's settings."""
    message = getattr(callback, "stopping_reason_message", None)
    if message:
        return " ".join(str(message).split())
    return f"{callback.monitor} did not improve in {callback.patience} validations"


def averages_weights_at_end(trainer: L.Trainer) -> bool:
    """Whether Stochastic Weight Averaging replaces the weights with its average when fit ends."""
    return any(isinstance(c, StochasticWeightAveraging) for c in trainer.callbacks)


def metrics_on_test_split(
    trainer: L.Trainer, module: ClassifierModule, datamodule: ImageDataModule, best: str | None
) -> dict[str, Any]:
    """The test split's metrics, from the `best` checkpoint file (None: the weights as fit left them)."""
    results = trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False)
    return {key: to_number(value) for key, value in (results[0] if results else {}).items()}


def write_results(
    metrics: dict[str, Any],
    trainer: L.Trainer,
    module: ClassifierModule,
    datamodule: ImageDataModule,
    output_dir: Path,
    started: float,
) -> dict[str, Any]:
    """Complete the metrics (test keys, skipped images, wall time), write metrics.json
    and print the summary line (rank zero); returns the metrics."""
    if getattr(datamodule, "skip_bad_images", False):
        metrics["data/skipped_images"] = len(datamodule.skipped_images)
    for key in module.metric_names()["test"]:
        metrics.setdefault(key, None)
    metrics["wall_s"] = round(time.perf_counter() - started, 3)
    if trainer.is_global_zero:
        write_json(output_dir / "metrics.json", metrics)
        print(summary_line(output_dir, metrics, has_tensorboard=(output_dir / "tensorboard").is_dir()))
        mlflow_uri = (read_tracked_runs(output_dir).get("mlflow") or {}).get("tracking_uri")
        if mlflow_uri and str(mlflow_uri).startswith(("sqlite:", "file:")):
            print(f"trainlab: MLflow run in {mlflow_uri}; view: {mlflow_ui_command(mlflow_uri)}")
    return metrics


def run_summary(
    cfg: DictConfig, trainer: L.Trainer, module: ClassifierModule, datamodule: ImageDataModule
) -> str:
    """One paragraph on what will run: data (root, split sizes, classes), model and its parameter count,
    the optimizer's param groups, precision and devices."""
    splits = datamodule.splits
    sizes = " / ".join(
        f"{name} {len(dataset):,}"
        for name, dataset in (("train", splits.train), ("val", splits.val), ("test", splits.test))
        if dataset is not None
    )
    classes = datamodule.classes
    shown = ", ".join(classes[:10]) + (f", ... ({len(classes)} in all)" if len(classes) > 10 else "")
    root = f" at {cfg.data.root}" if cfg.data.get("root") else ""
    params = sum(p.numel() for p in module.net.parameters())
    groups = ", ".join(
        f"{group_name(group, i)} lr {group['lr']:g} ({sum(p.numel() for p in group['params']):,} parameters)"
        for i, group in enumerate(module.build_optimizer().param_groups)
    )
    options = chosen_options()
    return (
        f"run: data={options['data']}{root}: {sizes} images, {len(classes)} classes ({shown}) | "
        f"model={options['model']} ({type(module.net).__name__}), {params:,} parameters | "
        f"loss={options['loss']} | optim={options['optim']}: {groups} | scheduler={options['scheduler']} | "
        f"precision {trainer.precision} on {trainer.num_devices * trainer.num_nodes} "
        f"{cfg.trainer.accelerator} device(s)"
    )


def record_run(cfg: DictConfig, trainer: L.Trainer, module: ClassifierModule, output_dir: Path) -> None:
    """Provenance before training: the resolved config and versions in the run dir and in every logger
    (trainlab.loggers.report), and TensorBoard's CUSTOM SCALARS layout (the module's metrics, and the
    charts callbacks declare with a `tensorboard_charts()` method)."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    config_yaml = OmegaConf.to_yaml(resolved)
    origin = provenance(cfg.seed, Path(trainlab.__file__).parent)
    if trainer.is_global_zero:
        # .hydra/config.yaml keeps the interpolations; this is what the run actually used
        atomic_write_text(output_dir / "config.yaml", config_yaml)
        write_json(output_dir / "provenance.json", origin)
    hparams = run_hparams(resolved, chosen_options(), task_overrides()) | {"world_size": trainer.world_size}
    report_start(trainer, output_dir, resolved, hparams, config_yaml, origin)
    declared = [c.tensorboard_charts() for c in trainer.callbacks if hasattr(c, "tensorboard_charts")]
    write_chart_layout(trainer, metric_charts(module.metric_names()), *declared)


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
    if metrics.get("stopped_early"):
        line += f" | stopped early after epoch {metrics.get('epochs')}: {metrics.get('stopping_reason')}"
    line += " | metrics.json, config.yaml, checkpoints/, train.log there"
    if has_tensorboard:
        line += f" | view: {tensorboard_command(output_dir / 'tensorboard')}"
    return line
