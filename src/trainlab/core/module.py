"""ClassifierModule: the tutorials' train/valid loop, as one LightningModule step shared by all stages.

It receives objects, never names: a network, a loss (a trainlab.losses.LossAdapter), an optimizer
factory and a scheduler spec, each built by Hydra from its config group.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import lightning.pytorch as L
import torch
from torch import nn
from torchmetrics import MaxMetric

from trainlab.compat import (
    epochs_trained,
    load_pending_loader_state,
    logging_this_step,
    on_last_batch_of_epoch,
    resumed_epoch_in_progress,
)
from trainlab.core.distributed import loss_scale_for_global_mean
from trainlab.core.metrics import load_running_state, running_state, stage_metrics
from trainlab.core.rng import capture_rng_state, restore_rng_state
from trainlab.errors import ConfigError, TrainlabError
from trainlab.loggers.report import log_histogram
from trainlab.models.layers import input_and_output_parameters
from trainlab.optim.param_groups import build_param_groups
from trainlab.optim.schedulers import build_scheduler, place_schedule
from trainlab.records.files import epoch_summary
from trainlab.records.history import MetricHistory

log = logging.getLogger(__name__)


class NonFiniteLossError(TrainlabError):
    """The training loss became NaN or Inf (nonfinite_loss=stop)."""


OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


class ClassifierModule(L.LightningModule):
    """Logs train/loss, train/acc, val/loss, val/acc, val/acc_best, test/loss, test/acc and lr/<group>.

    `scheduler` is a mapping like conf/scheduler/*.yaml: {"scheduler": partial or None, "interval": ...};
    `config` is the composed run config and `class_names` the data's classes, both stored in every
    checkpoint so a run can be rebuilt, evaluated and used for prediction from the checkpoint alone.
    """

    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module,
        optimizer: OptimizerFactory,
        num_classes: int,
        scheduler: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        param_groups: Sequence[Mapping[str, Any]] = (),
        no_decay: bool = False,
        class_names: Sequence[str] = (),
        nonfinite_loss: str = "stop",
        channels_last: bool = False,
        compile: bool = False,
        tta: str | None = None,
    ) -> None:
        super().__init__()
        # nonfinite_loss and tta values are checked by the schema (core.schema); what fits the loss here
        if tta == "flip" and getattr(loss, "task", "classification") == "sequence":
            raise ConfigError(
                "tta=flip mirrors images, which reverses a sequence's reading order: use tta=null."
            )
        self.tta = tta
        self.nonfinite_loss = nonfinite_loss
        self.skipped_batches = 0
        self.net = net
        self.channels_last = channels_last
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        # kept out of the module tree (not a submodule), so parameter names and checkpoints stay those of
        # the plain network; the compiled wrapper shares its parameters
        self.__dict__["compiled_net"] = torch.compile(net) if compile else None
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_spec = dict(scheduler or {})
        self.param_group_specs = list(param_groups)
        self.no_decay = no_decay
        self.config = dict(config or {})
        self.num_classes = num_classes
        self.class_names = list(class_names) or [str(i) for i in range(num_classes)]
        task = getattr(loss, "task", "classification")
        self.train_metrics = stage_metrics(task, num_classes)
        self.val_metrics = stage_metrics(task, num_classes, confusion=True)
        self.test_metrics = stage_metrics(task, num_classes, confusion=True)
        self.metrics = {"train": self.train_metrics, "val": self.val_metrics, "test": self.test_metrics}
        self.val_acc_best = MaxMetric()
        self.history = MetricHistory()
        self._epoch_lrs: tuple[int, dict[str, float], dict[str, float]] | None = None
        self._schedule_change: tuple[dict[str, Any], list[dict[str, Any]]] | None = None
        self._plateau_pending: list[float | None] = []
        self._plateau_stepped_in: int | None = None  # the epoch whose plateau step trainlab took itself

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        net = self.net if self.compiled_net is None else self.compiled_net
        return net(x)

    def eval_outputs(self, images: torch.Tensor) -> torch.Tensor:
        """The network's outputs as validation, test, eval and predict score them (tta applied)."""
        outputs = self(images)
        if self.tta == "flip":
            outputs = (outputs + self(images.flip(-1))) / 2
        return outputs

    def shared_step(
        self,
        batch: tuple[torch.Tensor, torch.Tensor],
        stage: str,
        batch_idx: int = 0,
        return_outputs: bool = False,
    ) -> torch.Tensor | None:
        images, labels = batch
        outputs = self(images) if stage == "train" else self.eval_outputs(images)
        raw = self.loss(outputs, labels)
        loss = raw.mean() if raw.ndim else raw  # reduction="none" still needs a scalar to backprop
        if stage == "train" and not self._finite_on_every_rank(loss):
            return self._skip_or_stop(loss, batch_idx)
        if raw.ndim and stage == "train" and self._at_log_step():
            per_sample = raw.detach().reshape(len(labels), -1).mean(dim=1)
            log_histogram(self, "train/loss_per_sample", per_sample)
        metrics = self.metrics[stage]
        metrics.update(loss.detach(), self.loss, outputs.detach(), labels)
        return outputs.detach() if return_outputs else loss

    def _at_log_step(self) -> bool:
        return self._trainer is not None and self.global_step % max(self.trainer.log_every_n_steps, 1) == 0

    def _finite_on_every_rank(self, loss: torch.Tensor) -> bool:
        """One host sync per step (free on a CPU): the guard must decide before backward runs."""
        finite = torch.isfinite(loss.detach()).all().to(torch.int32)
        if self._trainer is not None and self.trainer.world_size > 1:
            finite = self.trainer.strategy.reduce(finite, reduce_op="min")  # all ranks skip or none
        return bool(finite)

    def _skip_or_stop(self, loss: torch.Tensor, batch_idx: int) -> None:
        """A NaN/Inf loss never reaches the weights: skip the batch (counted) or stop with where it was."""
        where = f"epoch {self.current_epoch + 1}, step {self.global_step}, batch {batch_idx + 1} of the epoch"
        value = loss.detach().float().flatten()[0].item()
        if self.nonfinite_loss == "skip":
            self.skipped_batches += 1
            log.warning(
                "train/loss is %s at %s: batch skipped, %d so far (nonfinite_loss=skip)",
                value,
                where,
                self.skipped_batches,
            )
            return None
        raise NonFiniteLossError(
            f"train/loss is {value} at {where}. Training stopped before this step's update, so the weights "
            "are still finite and no checkpoint holds this step. Lower optim.lr, clip gradients "
            "(trainer.gradient_clip_val=1.0), check the data, or set nonfinite_loss=skip to skip such "
            "batches and count them."
        )

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        loss = self.shared_step(batch, "train", batch_idx)
        if loss is None:
            return None  # Lightning skips backward and the optimizer step
        if self._logging_this_step():
            self.log("train/loss_step", loss.detach(), on_step=True, on_epoch=False, prog_bar=True)
        if self._at_log_step():
            self.history.add_step(self.global_step, loss)
        if self._trainer is None or self.trainer.world_size == 1:
            return loss
        reduction = getattr(getattr(self.loss, "criterion", None), "reduction", "mean")
        return loss * loss_scale_for_global_mean(self.trainer, len(batch[1]), reduction)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Returns the batch's outputs (tta applied, detached): callbacks get them as `outputs` in
        on_validation_batch_end (the prediction grid picks its images from them)."""
        return self.shared_step(batch, "val", return_outputs=True)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self.shared_step(batch, "test")

    def on_train_start(self) -> None:
        # (the sanity-check validation never counts for val/acc_best; a resumed run's best is restored)
        load_pending_loader_state(self.trainer)
        if self._schedule_change is not None:
            self._place_changed_schedule(*self._schedule_change)
            self._schedule_change = None
        for config, value in zip(self.trainer.lr_scheduler_configs, self._plateau_pending, strict=False):
            if value is not None and config.reduce_on_plateau:
                config.scheduler.step(value)
        self._plateau_pending = []

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # the lr each epoch trains with, for its line in the log (schedulers step before epoch-end hooks)
        if self._epoch_lrs is None or self._epoch_lrs[0] != self.current_epoch:
            first = self.learning_rates()
            self._epoch_lrs = (self.current_epoch, first, first)
        elif self._trainer is not None and on_last_batch_of_epoch(self.trainer):
            self._epoch_lrs = (self.current_epoch, self._epoch_lrs[1], self.learning_rates())
        if self._logging_this_step():
            for name, lr in self.learning_rates().items():
                self.log(f"lr/{name}", lr, on_step=True, on_epoch=False)

    def _logging_this_step(self) -> bool:
        """Whether Lightning hands this step's values to the loggers (every trainer.log_every_n_steps).

        Step values logged in other steps are never written anywhere, but each self.log call still costs
        about a tenth of a millisecond of Python, a share of a small model's step worth saving.
        """
        if self._trainer is None:
            return True
        return logging_this_step(self.trainer)

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")
        if resumed_epoch_in_progress(self.trainer):
            self._step_plateau_schedulers()
        if self.nonfinite_loss == "skip":
            self.log("train/skipped_batches", float(self.skipped_batches))
        # runs after validation, so one line per epoch can show both, like the tutorials' prints
        if self.trainer.is_global_zero:
            log.info(epoch_summary(self.current_epoch, self.trainer.max_epochs, self._epoch_metrics()))

    def _epoch_metrics(self) -> dict[str, Any]:
        """The epoch's logged values and the lr it trained with ('first -> last' where it changed)."""
        rates: dict[str, Any] = {}
        if self._epoch_lrs is not None and self._epoch_lrs[0] == self.current_epoch:
            _, first, last = self._epoch_lrs
            for name, lr in first.items():
                end = last.get(name, lr)
                rates[f"lr/{name}"] = lr if end == lr else f"{lr:.4g} -> {end:.4g}"
        return {**self.trainer.callback_metrics, **rates}

    def on_validation_epoch_end(self) -> None:
        acc = self._log_epoch("val")
        if not self.trainer.sanity_checking:
            self.val_acc_best.update(acc)
            self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True)

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def _log_epoch(self, stage: str) -> torch.Tensor:
        """Epoch means over all samples (synced across devices by torchmetrics), then reset."""
        metrics = self.metrics[stage]
        values = metrics.compute_and_reset()
        for name, value in values.items():
            self.log(f"{stage}/{name}", value, prog_bar=stage != "train" and name in ("loss", "acc"))
        loss, acc = values["loss"], values["acc"]
        if stage in ("train", "val") and not self.trainer.sanity_checking:
            self.history.add_epoch(stage, self.current_epoch, self.global_step, loss, acc)
        return acc

    def confusion_matrix(self, stage: str) -> torch.Tensor | None:
        """The confusion matrix of the last finished `val` or `test` epoch (None before one ends)."""
        metrics = self.metrics[stage]
        return metrics.last_confusion

    def learning_rates(self) -> dict[str, float]:
        """Current lr of every param group of every optimizer, keyed by group name."""
        rates: dict[str, float] = {}
        optimizers = self.trainer.optimizers if self._trainer is not None else []
        for optimizer in optimizers:
            for i, group in enumerate(optimizer.param_groups):
                rates[group_name(group, i)] = float(group["lr"])
        return rates

    def metric_names(self) -> dict[str, list[str]]:
        """What this module logs, by when: "epoch" (each epoch's train/ and val/ values, after its
        validation), "step" (each optimizer step), "test" (only when testing). Monitors are checked
        against these before training (trainlab.training.preflight.config.check_monitors)."""
        epoch = [f"{stage}/{name}" for stage in ("train", "val") for name in self.metrics[stage].names]
        epoch.append("val/acc_best")
        if self.nonfinite_loss == "skip":
            epoch.append("train/skipped_batches")
        groups = self.build_optimizer().param_groups
        step = ["train/loss_step", *(f"lr/{group_name(group, i)}" for i, group in enumerate(groups))]
        return {"epoch": epoch, "step": step, "test": [f"test/{name}" for name in self.metrics["test"].names]}

    def build_optimizer(self) -> torch.optim.Optimizer:
        """The optimizer over named parameter groups (see trainlab.optim.param_groups)."""
        base_lr = getattr(self.optimizer_factory, "keywords", {}).get("lr")
        groups = build_param_groups(self.named_parameters(), self.param_group_specs, self.no_decay, base_lr)
        # an optimizer with a rule for hidden layers only (Muon) is told which matrices are not hidden
        split = getattr(getattr(self.optimizer_factory, "func", None), "split_param_groups", None)
        if split is not None:
            groups = split(groups, input_and_output_parameters(self.net))
        return self.optimizer_factory(params=groups)

    def configure_optimizers(self) -> Any:
        optimizer = self.build_optimizer()
        scheduler = build_scheduler(self.scheduler_spec, optimizer)
        return optimizer if scheduler is None else {"optimizer": optimizer, "lr_scheduler": scheduler}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["trainlab_config"] = self.config
        checkpoint["trainlab_classes"] = self.class_names
        checkpoint["trainlab_rng"] = capture_rng_state()
        checkpoint["trainlab_history"] = self.history.state_dict()
        checkpoint["trainlab_skipped_batches"] = self.skipped_batches
        if self.val_acc_best.update_called:
            checkpoint["trainlab_val_acc_best"] = float(self.val_acc_best.compute())
        checkpoint["trainlab_train_sums"] = self._train_sums_of_all_ranks()
        checkpoint["trainlab_plateau_pending"] = self._pending_plateau_values()

    def _pending_plateau_values(self) -> list[float | None]:
        """Per scheduler: the monitored value a ReduceLROnPlateau has yet to step with, else None.

        Lightning steps plateau schedulers after the epoch-end hooks, where checkpoints are saved, so an
        epoch-end checkpoint holds the plateau state from before that epoch's step; on_train_start of
        the resumed run takes the step with the value saved here.
        """
        if self._trainer is None or not on_last_batch_of_epoch(self.trainer):
            return []
        if self._plateau_stepped_in == self.current_epoch:
            return []
        return [self._plateau_value_due(config) for config in self.trainer.lr_scheduler_configs]

    def _plateau_value_due(self, config: Any) -> float | None:
        """The value a ReduceLROnPlateau steps with at this epoch's end; None for other schedulers."""
        due = config.interval == "epoch" and (self.current_epoch + 1) % config.frequency == 0
        value = self.trainer.callback_metrics.get(config.monitor) if config.reduce_on_plateau else None
        return float(value) if value is not None and due else None

    def _step_plateau_schedulers(self) -> None:
        """At the end of an epoch resumed mid-way, Lightning skips ReduceLROnPlateau's step (it assumes
        the monitored value was lost with the interruption); the value is right here, so take it."""
        for config in self.trainer.lr_scheduler_configs:
            value = self._plateau_value_due(config)
            if value is not None:
                config.scheduler.step(value)
                self._plateau_stepped_in = self.current_epoch

    def _train_sums_of_all_ranks(self) -> dict[str, dict[str, torch.Tensor]]:
        """This epoch's training sums so far (empty at an epoch's end); summed over ranks, since only
        rank 0 writes the checkpoint (every rank runs this hook)."""
        sums = running_state(self.metrics["train"])
        if self._trainer is not None and self.trainer.world_size > 1:
            sums = {
                name: {k: self.trainer.strategy.reduce(v, reduce_op="sum") for k, v in state.items()}
                for name, state in sums.items()
            }
        return sums

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "trainlab_rng" in checkpoint:
            restore_rng_state(checkpoint["trainlab_rng"])
        if "trainlab_history" in checkpoint:
            self.history.load_state_dict(checkpoint["trainlab_history"])
        self.skipped_batches = int(checkpoint.get("trainlab_skipped_batches", 0))
        saved_config = checkpoint.get("trainlab_config") or {}
        self.val_acc_best.reset()
        best = _val_acc_best(checkpoint)  # the run's history, also when continued in a new run dir
        if best is not None:
            self.val_acc_best.update(torch.tensor(best))
        if self._trainer is None or self.trainer.state.fn != "fit":
            return  # weights for testing or evaluation: the training state below is not wanted
        self._plateau_pending = list(checkpoint.get("trainlab_plateau_pending") or [])
        if self.global_rank == 0:  # the sums of all ranks, counted once
            load_running_state(self.metrics["train"], checkpoint.get("trainlab_train_sums") or {})
        saved_schedule, schedule = saved_config.get("scheduler"), self.config.get("scheduler")
        if saved_schedule is None or schedule is None:
            return
        if "lengths" not in saved_schedule:  # written before lengths were derived: compare what ran
            schedule = {key: value for key, value in schedule.items() if key != "lengths"}
        if saved_schedule == schedule:
            return
        if _is_plateau(schedule):
            # ReduceLROnPlateau has no length to rebuild and no position to step to without its metric
            if _is_plateau(saved_schedule):
                log.warning("scheduler.* differs from the checkpoint's; plateau continues from its state.")
            else:
                checkpoint["lr_schedulers"] = []
                log.info("resumed with scheduler=plateau instead of the checkpoint's: it starts afresh.")
            return
        # the old schedule's state must not be loaded into the new one: on_train_start places the new
        # schedule where a run that followed it from the start would be
        self._schedule_change = (saved_schedule, list(checkpoint.get("lr_schedulers") or []))
        checkpoint["lr_schedulers"] = []

    def _place_changed_schedule(self, saved: dict[str, Any], saved_states: list[dict[str, Any]]) -> None:
        """Resuming with a different schedule (a longer run, other lengths or scheduler): rebuild it for
        this run and step it to the checkpoint's position, logging the old and new values and the lr.

        The position is the old scheduler's own step count where it counted in the same unit, else the
        epochs or optimizer steps done.
        """
        trainer, new = self.trainer, self.config["scheduler"]
        optimizer = trainer.optimizers[0]  # trainlab builds one optimizer (with param groups)
        configured = self.build_optimizer().param_groups  # lr, momentum and betas as the config sets them
        same_unit = all(saved.get(key) == new.get(key) for key in ("interval", "frequency"))
        if same_unit and saved_states and "last_epoch" in saved_states[0]:
            steps = int(saved_states[0]["last_epoch"])
        else:
            done = trainer.global_step if new.get("interval") == "step" else epochs_trained(trainer)
            steps = done // max(int(new.get("frequency") or 1), 1)
        before = self.learning_rates()
        placed = place_schedule(self.scheduler_spec, optimizer, steps, configured)
        if placed is not None:  # Lightning made its scheduler config from the same spec
            trainer.lr_scheduler_configs[0].scheduler = placed["scheduler"]
        log.info(
            "resumed with a different schedule (%s): rebuilt for this run and placed at its step %d; lr %s "
            "before, %s now",
            _differences(saved, new),
            steps,
            _rates(before),
            _rates(self.learning_rates()),
        )


def group_name(group: Mapping[str, Any], index: int) -> str:
    """A param group's name in lr/<name>: its own, else `default` for the first and group<i> after."""
    return group.get("name") or ("default" if index == 0 else f"group{index}")


def _is_plateau(schedule: Mapping[str, Any]) -> bool:
    return str((schedule.get("scheduler") or {}).get("_target_", "")).endswith("ReduceLROnPlateau")


def _val_acc_best(checkpoint: Mapping[str, Any]) -> float | None:
    """val/acc_best as saved; checkpoints of older trainlab versions: the val/acc ModelCheckpoint's best."""
    if checkpoint.get("trainlab_val_acc_best") is not None:
        return float(checkpoint["trainlab_val_acc_best"])
    for state in (checkpoint.get("callbacks") or {}).values():
        if (
            isinstance(state, Mapping)
            and state.get("monitor") == "val/acc"
            and state.get("best_model_score") is not None
        ):
            return float(state["best_model_score"])
    return None


def _differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "scheduler.") -> str:
    """'key: old -> new' for each plain value that differs between two config sections."""
    parts = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            inner = _differences(a, b, f"{prefix}{key}.")
            parts += [inner] if inner else []
        elif a != b:
            parts.append(f"{prefix}{key}: {a} -> {b}")
    return ", ".join(parts)


def _rates(rates: Mapping[str, float]) -> str:
    return " ".join(f"{name}={lr:.4g}" for name, lr in rates.items())
