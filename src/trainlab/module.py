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

from trainlab.distributed import loss_scale_for_global_mean
from trainlab.errors import ConfigError, TrainlabError
from trainlab.metrics import StageMetrics, stage_metrics
from trainlab.optim.param_groups import build_param_groups
from trainlab.optim.schedulers import build_scheduler
from trainlab.tracking.history import MetricHistory
from trainlab.tracking.rng import capture_rng_state, restore_rng_state
from trainlab.tracking.run_files import epoch_summary
from trainlab.tracking.tensorboard import log_histogram

log = logging.getLogger(__name__)

NONFINITE_POLICIES = ("stop", "skip")
TTA_MODES = (None, "flip")


class NonFiniteLossError(TrainlabError):
    """The training loss became NaN or Inf (nonfinite_loss=stop)."""


OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


def load_pending_loader_state(trainer: L.Trainer) -> None:
    """Hand a resumed run's train-loader position (saved in the checkpoint) to the loader.

    Lightning applies it only when it builds the train loader after restoring the checkpoint, but
    `trainer.estimated_stepping_batches` (one-cycle's total_steps) builds it earlier, during
    configure_optimizers; the loader starts lazily, so handing the state over here is still in time.
    """
    fit_loop = trainer.fit_loop
    if getattr(fit_loop, "_combined_loader_states_to_load", None) and hasattr(
        fit_loop, "_load_combined_loader_states"
    ):
        fit_loop._load_combined_loader_states()


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
        if nonfinite_loss not in NONFINITE_POLICIES:
            raise ConfigError(
                f"nonfinite_loss={nonfinite_loss!r} is not a policy: use {' or '.join(NONFINITE_POLICIES)}."
            )
        if tta not in TTA_MODES:
            raise ConfigError(f"tta={tta!r} is unknown: use flip, or null for none.")
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
        self.val_acc_best = MaxMetric()
        self.history = MetricHistory()

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
        self, batch: tuple[torch.Tensor, torch.Tensor], stage: str, batch_idx: int = 0
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
        metrics: StageMetrics = getattr(self, f"{stage}_metrics")
        metrics.update(loss.detach(), self.loss.predict(outputs.detach()), labels)
        return loss

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
        where = f"epoch {self.current_epoch}, step {self.global_step}, batch {batch_idx} of the epoch"
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
            self.log("train/loss_step", loss.detach(), on_step=True, on_epoch=False)
        if self._at_log_step():
            self.history.add_step(self.global_step, loss)
        if self._trainer is None or self.trainer.world_size == 1:
            return loss
        reduction = getattr(getattr(self.loss, "criterion", None), "reduction", "mean")
        return loss * loss_scale_for_global_mean(self.trainer, len(batch[1]), reduction)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self.shared_step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self.shared_step(batch, "test")

    def on_train_start(self) -> None:
        # the sanity-check validation before training must not count as the best epoch
        self.val_acc_best.reset()
        load_pending_loader_state(self.trainer)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
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
        return self.trainer._logger_connector.should_update_logs

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")
        if self.nonfinite_loss == "skip":
            self.log("train/skipped_batches", float(self.skipped_batches))
        # runs after validation, so one line per epoch can show both, like the tutorials' prints
        if self.trainer.is_global_zero:
            rates = {f"lr/{name}": lr for name, lr in self.learning_rates().items()}
            metrics = {**self.trainer.callback_metrics, **rates}
            log.info(epoch_summary(self.current_epoch, self.trainer.max_epochs, metrics))

    def on_validation_epoch_end(self) -> None:
        acc = self._log_epoch("val")
        if not self.trainer.sanity_checking:
            self.val_acc_best.update(acc)
            self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True)

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def _log_epoch(self, stage: str) -> torch.Tensor:
        """Epoch means over all samples (synced across devices by torchmetrics), then reset."""
        metrics: StageMetrics = getattr(self, f"{stage}_metrics")
        values = metrics.compute_and_reset()
        for name, value in values.items():
            self.log(f"{stage}/{name}", value, prog_bar=stage != "train" and name in ("loss", "acc"))
        loss, acc = values["loss"], values["acc"]
        if stage in ("train", "val") and not self.trainer.sanity_checking:
            self.history.add_epoch(stage, self.current_epoch, self.global_step, loss, acc)
        return acc

    def confusion_matrix(self, stage: str) -> torch.Tensor | None:
        """The confusion matrix of the last finished `val` or `test` epoch (None before one ends)."""
        metrics: StageMetrics = getattr(self, f"{stage}_metrics")
        return metrics.last_confusion

    def learning_rates(self) -> dict[str, float]:
        """Current lr of every param group of every optimizer, keyed by group name."""
        rates: dict[str, float] = {}
        optimizers = self.trainer.optimizers if self._trainer is not None else []
        for optimizer in optimizers:
            for i, group in enumerate(optimizer.param_groups):
                rates[group.get("name") or ("default" if i == 0 else f"group{i}")] = float(group["lr"])
        return rates

    def build_optimizer(self) -> torch.optim.Optimizer:
        """The optimizer over named parameter groups (see trainlab.optim.param_groups)."""
        base_lr = getattr(self.optimizer_factory, "keywords", {}).get("lr")
        groups = build_param_groups(self.named_parameters(), self.param_group_specs, self.no_decay, base_lr)
        return self.optimizer_factory(params=groups)

    def configure_optimizers(self) -> Any:
        optimizer = self.build_optimizer()
        total_steps = self.trainer.estimated_stepping_batches if self._trainer is not None else None
        scheduler = build_scheduler(self.scheduler_spec, optimizer, total_steps)
        return optimizer if scheduler is None else {"optimizer": optimizer, "lr_scheduler": scheduler}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["trainlab_config"] = self.config
        checkpoint["trainlab_classes"] = self.class_names
        checkpoint["trainlab_rng"] = capture_rng_state()
        checkpoint["trainlab_history"] = self.history.state_dict()
        checkpoint["trainlab_skipped_batches"] = self.skipped_batches

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "trainlab_rng" in checkpoint:
            restore_rng_state(checkpoint["trainlab_rng"])
        if "trainlab_history" in checkpoint:
            self.history.load_state_dict(checkpoint["trainlab_history"])
        self.skipped_batches = int(checkpoint.get("trainlab_skipped_batches", 0))
