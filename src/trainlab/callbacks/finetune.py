"""Freeze a backbone for the first epochs, then train it as a new optimizer param group.

The classic transfer-learning recipe, done with torch's optimizer.add_param_group() at run time: the
head trains alone while the backbone is frozen (its parameters are in no param group), then the backbone
joins the optimizer as a group of its own with its own (usually smaller) learning rate, logged as
lr/<group_name>. Lightning's BaseFinetuning re-creates the group when a run resumes past that epoch, with
its optimizer state; the backbone is made trainable again here.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

import lightning.pytorch as L
import torch
from lightning.pytorch.callbacks import BaseFinetuning
from torch import nn

from trainlab.errors import ConfigError

log = logging.getLogger(__name__)


class UnfreezeBackbone(BaseFinetuning):
    def __init__(
        self,
        backbone: str,
        unfreeze_at_epoch: int = 1,
        lr: float | None = None,
        lr_scale: float = 0.1,
        group_name: str = "backbone",
        train_bn: bool = True,
    ) -> None:
        super().__init__()
        if unfreeze_at_epoch < 0:
            raise ConfigError(f"callbacks.finetune.unfreeze_at_epoch={unfreeze_at_epoch} must be >= 0.")
        self.pattern = re.compile(backbone)
        self.unfreeze_at_epoch = unfreeze_at_epoch
        self.lr = lr
        self.lr_scale = lr_scale
        self.group_name = group_name
        self.train_bn = train_bn

    def backbone_modules(self, pl_module: L.LightningModule) -> list[nn.Module]:
        """Modules whose full name (as in named_modules(), e.g. 'net.features') matches the pattern."""
        modules = [m for name, m in pl_module.named_modules() if name and self.pattern.fullmatch(name)]
        if not modules:
            names = [name for name, _ in pl_module.named_modules() if name.count(".") <= 1 and name]
            raise ConfigError(
                f"callbacks finetune: backbone='{self.pattern.pattern}' matches no module. "
                f"Top-level module names: {', '.join(names)}."
            )
        return modules

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_fit_start(trainer, pl_module)  # a resumed run: BaseFinetuning restores the groups
        # the modules come back frozen (freeze_before_training at setup); a run resumed mid-epoch gets no
        # on_train_epoch_start for that epoch, so they are made trainable again here
        if any(g.get("name") == self.group_name for opt in trainer.optimizers for g in opt.param_groups):
            self.make_trainable(self.backbone_modules(pl_module))

    def freeze_before_training(self, pl_module: L.LightningModule) -> None:
        modules = self.backbone_modules(pl_module)
        self.freeze(modules, train_bn=self.train_bn)
        log.info(
            "finetune: %s frozen (%s parameters) until epoch %d, when it joins the optimizer as param "
            "group '%s'",
            self.pattern.pattern,
            f"{_count(modules):,}",
            self.unfreeze_at_epoch + 1,
            self.group_name,
        )

    def finetune_function(
        self, pl_module: L.LightningModule, epoch: int, optimizer: torch.optim.Optimizer
    ) -> None:
        if epoch != self.unfreeze_at_epoch or any(
            g.get("name") == self.group_name for g in optimizer.param_groups
        ):
            return  # not the epoch, or a run resumed at its start that has the group back (on_fit_start)
        lr = self.lr if self.lr is not None else optimizer.param_groups[0]["lr"] * self.lr_scale
        self.unfreeze_and_add_param_group(
            self.backbone_modules(pl_module), optimizer, lr=lr, train_bn=self.train_bn, initial_denom_lr=1.0
        )
        group = optimizer.param_groups[-1]
        group["name"] = self.group_name
        group.setdefault("initial_lr", lr)
        _extend_schedulers(pl_module.trainer, optimizer, [lr])
        log.info(
            "finetune: epoch %d: %s unfrozen, training as param group '%s' at lr %g (%s parameters)",
            epoch + 1,
            self.pattern.pattern,
            self.group_name,
            lr,
            f"{sum(p.numel() for p in group['params']):,}",
        )


def _count(modules: list[nn.Module]) -> int:
    return sum(p.numel() for module in modules for p in module.parameters())


def _extend_schedulers(
    trainer: L.Trainer, optimizer: torch.optim.Optimizer, new_lrs: Iterable[float]
) -> None:
    """Schedulers keep one base lr per group; give the new group its own so it is scheduled too."""
    for config in trainer.lr_scheduler_configs:
        scheduler = config.scheduler
        if getattr(scheduler, "optimizer", None) is optimizer and hasattr(scheduler, "base_lrs"):
            scheduler.base_lrs.extend(new_lrs)
