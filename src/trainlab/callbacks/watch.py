"""Backprop and the optimizer per layer: gradients, weights and each step's updates (`callbacks=watch`).

At Lightning's logging cadence (`trainer.log_every_n_steps`), for every parameter tensor, named as in
`named_parameters()` so that the tags group by module (`watch/grad_norm/net.features.0.weight`):

- `grad_norm`: the L2 norm of its gradient as backward left it (before gradient clipping, if any);
- `weight_norm`: the L2 norm of the weights after the step;
- `update_norm`: the L2 norm of the change the step made, and `update_ratio` = update_norm / weight_norm
  (the update-to-weight ratio; around 1e-3 is the usual rule of thumb for a healthy learning rate,
  CS231n "Neural Networks Part 3");
- `state_<key>`: the L2 norm of every per-parameter tensor the optimizer keeps (SGD's `momentum_buffer`,
  Adam's `exp_avg` and `exp_avg_sq`, ...): how the optimizer's memory of the gradients grows; for the
  Adam family also `adam_step_size`, the median effective per-element learning rate (see state_norms).

TensorBoard's CUSTOM SCALARS tab holds one chart per quantity with every layer on it (all optimizer state on
one chart). Every
`histogram_every_n_steps` (0: never) the weights and gradients also go to its HISTOGRAMS tab.

Between logging steps the callback only adds each step's gradient norms to per-layer sums on the device,
with no host synchronisation: a trainable layer whose gradient was zero for a whole epoch is dead (one
warning line, at the epoch's end), and the first step at which a layer's gradient was NaN or Inf is kept
and named in one warning line at the next logging step, the epoch's end, or when the run stops.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning.pytorch as L
import torch
from lightning.pytorch.callbacks import Callback

from trainlab.compat import logging_this_step
from trainlab.loggers.report import backends

log = logging.getLogger(__name__)

QUANTITIES = ("grad_norm", "weight_norm", "update_norm", "update_ratio")


class WatchLayers(Callback):
    """Per-parameter gradient, weight, update and optimizer-state norms (see the module docstring).

    Args:
        histogram_every_n_steps: optimizer steps between weight and gradient histograms (0: none).
        optimizer_state: also log the norms of the optimizer's per-parameter state tensors.
    """

    def __init__(self, histogram_every_n_steps: int = 0, optimizer_state: bool = True) -> None:
        if histogram_every_n_steps < 0:
            raise ValueError(f"histogram_every_n_steps={histogram_every_n_steps} must be >= 0")
        self.histogram_every_n_steps = histogram_every_n_steps
        self.optimizer_state = optimizer_state
        self.names: list[str] = []
        self._grad_sums: torch.Tensor | None = None
        self._first_nonfinite: torch.Tensor | None = None
        self._pending: tuple[int, torch.Tensor, list[torch.Tensor]] | None = None
        self._reported_dead: set[str] = set()
        self._reported_nonfinite = False

    def tensorboard_charts(self) -> dict[str, dict[str, list[str]]]:
        """CUSTOM SCALARS charts: one per quantity, every parameter a line on it (see record_run)."""
        charts = {quantity: [rf"^watch/{quantity}/"] for quantity in (*QUANTITIES, "adam_step_size")}
        if self.optimizer_state:
            charts["optimizer state"] = [r"^watch/state_"]
        return {"watch": charts}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.names = [name for name, _ in pl_module.named_parameters()]

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        params = [p for _, p in pl_module.named_parameters()]
        norms = gradient_norms(params)
        if self._grad_sums is None or self._grad_sums.shape != norms.shape:
            self._grad_sums = torch.zeros_like(norms)
            self._first_nonfinite = torch.full_like(norms, -1.0)
        self._grad_sums += norms
        step = trainer.global_step
        bad = ~torch.isfinite(norms) & (self._first_nonfinite < 0)
        self._first_nonfinite = torch.where(bad, torch.full_like(norms, float(step)), self._first_nonfinite)
        if logging_this_step(trainer):
            self._pending = (step, norms, [p.detach().clone() for p in params])
        if self.histogram_every_n_steps and step % self.histogram_every_n_steps == 0:
            for backend in backends(trainer):
                for name, p in zip(self.names, params, strict=True):
                    if p.grad is not None:
                        backend.histogram(f"watch_grads/{name}", p.grad.detach(), step)
                    backend.histogram(f"watch_weights/{name}", p.detach(), step)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._pending is None:
            return
        step, grad_norms, before = self._pending
        self._pending = None
        params = [p for _, p in pl_module.named_parameters()]
        values = step_values(self.names, params, before, grad_norms)
        if self.optimizer_state:
            for optimizer in trainer.optimizers:
                values.update(state_norms(self.names, params, optimizer))
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics(values, step=step)
        self._report_nonfinite(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._grad_sums is None:
            return
        trainable = [p.requires_grad for _, p in pl_module.named_parameters()]
        sums = self._grad_sums.tolist()
        dead = [
            name
            for name, total, grad in zip(self.names, sums, trainable, strict=True)
            if grad and total == 0.0 and name not in self._reported_dead
        ]
        if dead and trainer.is_global_zero:  # gradients are synced: every rank has the same ones
            log.warning(
                "watch: zero gradient for the whole of epoch %d in %s: these layers do not learn (dead "
                "activations before them, a detached path, or an output multiplied by zero)",
                trainer.current_epoch + 1,
                ", ".join(dead),
            )
        self._reported_dead.update(dead)
        self._grad_sums.zero_()
        self._report_nonfinite(trainer)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._report_nonfinite(trainer)

    def _report_nonfinite(self, trainer: L.Trainer) -> None:
        """Name the layer whose gradient went NaN/Inf first (the earliest step; within it, the first
        parameter in forward-definition order), once per run."""
        if self._reported_nonfinite or self._first_nonfinite is None or not trainer.is_global_zero:
            return
        first = self._first_nonfinite.tolist()
        went = [(step, i) for i, step in enumerate(first) if step >= 0]
        if not went:
            return
        self._reported_nonfinite = True
        step, index = min(went)
        others = [self.names[i] for s, i in sorted(went) if i != index]
        log.warning(
            "watch: the gradient of %s went non-finite (NaN or Inf) first, at optimizer step %d%s",
            self.names[index],
            int(step),
            f"; later also {', '.join(others)}" if others else "",
        )


def gradient_norms(params: list[torch.Tensor]) -> torch.Tensor:
    """The L2 norm of each parameter's gradient (0 for a parameter without one), as one float32 tensor
    on the parameters' device: shape (len(params),)."""
    if not params:
        return torch.zeros(0)
    zero = torch.zeros((), device=params[0].device)
    return torch.stack(
        [torch.linalg.vector_norm(p.grad.detach().float()) if p.grad is not None else zero for p in params]
    )


def step_values(
    names: list[str], params: list[torch.Tensor], before: list[torch.Tensor], grad_norms: torch.Tensor
) -> dict[str, float]:
    """{watch/<quantity>/<name>: value} for the step that moved `before` to `params` (one host sync)."""
    weights = torch.stack([torch.linalg.vector_norm(p.detach().float()) for p in params])
    updates = torch.stack(
        [torch.linalg.vector_norm((p.detach() - b).float()) for p, b in zip(params, before, strict=True)]
    )
    ratios = updates / weights.clamp(min=torch.finfo(torch.float32).tiny)
    table = torch.stack([grad_norms.float(), weights, updates, ratios]).tolist()
    return {
        f"watch/{quantity}/{name}": value
        for quantity, row in zip(QUANTITIES, table, strict=True)
        for name, value in zip(names, row, strict=True)
    }


def state_norms(
    names: list[str], params: list[torch.Tensor], optimizer: torch.optim.Optimizer
) -> dict[str, float]:
    """{watch/state_<key>/<name>: norm} of the optimizer's per-parameter state tensors of the
    parameter's size (momentum buffers, moment estimates; Muon keeps a conv kernel's as a matrix); step
    counters and scalars are left out.

    For the Adam family (a state with `exp_avg_sq` and `step`, a group with `betas` and `eps`), also
    `watch/adam_step_size/<name>`: the median over the tensor's elements of the effective per-element
    learning rate lr / (sqrt(v_hat) + eps), v_hat the bias-corrected second moment (Kingma & Ba, 2015,
    Algorithm 1), which is what Adam multiplies its (bias-corrected) momentum by.
    """
    groups = {id(p): group for group in optimizer.param_groups for p in group["params"]}
    values = {}
    for name, p in zip(names, params, strict=True):
        state = optimizer.state.get(p, {})
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and value.ndim and value.numel() == p.numel():
                values[f"watch/state_{key}/{name}"] = float(torch.linalg.vector_norm(value.detach().float()))
        group = groups.get(id(p), {})
        if "exp_avg_sq" in state and "step" in state and "betas" in group and "eps" in group:
            step = float(state["step"])
            v_hat = state["exp_avg_sq"].detach().float() / (1 - group["betas"][1] ** step)
            size = float(group["lr"]) / (v_hat.sqrt() + group["eps"])
            values[f"watch/adam_step_size/{name}"] = float(size.median())
    return values
