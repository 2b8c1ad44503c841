"""Completing a scheduler config into Lightning's lr_scheduler dict, plus what torch lacks.

A conf/scheduler/*.yaml holds a partial torch scheduler under `scheduler` and Lightning's keys
(`interval`, `frequency`, `monitor`) beside it, plus trainlab's `warmup`: that many intervals of linear
warm-up put in front of any scheduler with torch's SequentialLR. A `total_steps: null` (OneCycleLR) is
filled with the run's optimizer steps, known only once the trainer is set up.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch.optim.lr_scheduler import LinearLR, LRScheduler, ReduceLROnPlateau, SequentialLR

from trainlab.errors import ConfigError

LIGHTNING_KEYS = ("interval", "frequency", "monitor", "strict", "name")
SchedulerFactory = Callable[..., LRScheduler | ReduceLROnPlateau]


def build_scheduler(
    spec: Mapping[str, Any], optimizer: torch.optim.Optimizer, total_steps: int | None
) -> dict[str, Any] | None:
    """Lightning's lr_scheduler config for `spec`, or None when the spec names no scheduler."""
    factory: SchedulerFactory | None = spec.get("scheduler")
    warmup = int(spec.get("warmup") or 0)
    if factory is None and not warmup:
        return None
    if spec.get("interval", "epoch") not in ("epoch", "step"):
        raise ConfigError(f"scheduler.interval={spec.get('interval')!r} must be 'epoch' or 'step'.")
    scheduler = _complete(factory, optimizer, total_steps) if factory is not None else None
    if warmup:
        scheduler = with_warmup(scheduler, optimizer, warmup, float(spec.get("warmup_start_factor", 0.1)))
    settings = {k: spec[k] for k in LIGHTNING_KEYS if spec.get(k) is not None}
    return {"scheduler": scheduler, **settings}


def _complete(factory: SchedulerFactory, optimizer: torch.optim.Optimizer, total_steps: int | None) -> Any:
    keywords = getattr(factory, "keywords", {})
    if "total_steps" in keywords and keywords["total_steps"] is None:
        if total_steps is None or total_steps <= 0 or total_steps == math.inf:
            raise ConfigError(
                "scheduler.scheduler.total_steps is null and the run's length is unknown: set "
                "trainer.max_epochs or scheduler.scheduler.total_steps."
            )
        factory = functools.partial(factory, total_steps=int(total_steps))
    return factory(optimizer=optimizer)


def with_warmup(
    scheduler: Any, optimizer: torch.optim.Optimizer, warmup: int, start_factor: float
) -> LRScheduler:
    """`warmup` intervals rising linearly from start_factor * lr to lr, then `scheduler` (or constant)."""
    if isinstance(scheduler, ReduceLROnPlateau):
        raise ConfigError(
            "scheduler.warmup cannot precede plateau (SequentialLR cannot drive ReduceLROnPlateau)."
        )
    ramp = LinearLR(optimizer, start_factor=start_factor, end_factor=1.0, total_iters=warmup)
    if scheduler is None:
        return ramp
    return SequentialLR(optimizer, schedulers=[ramp, scheduler], milestones=[warmup])


class ExpressionLR(torch.optim.lr_scheduler.LambdaLR):
    """LambdaLR from a formula in the config, e.g. `0.95 ** epoch` (the multiplier of the initial lr).

    The expression sees `epoch` (the scheduler's step count) and the math module's functions; nothing else,
    so a config cannot run arbitrary code. Picklable, unlike a lambda, so checkpoints keep its state.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, expression: str, last_epoch: int = -1) -> None:
        self.expression = expression
        try:
            self._code = compile(expression, "<scheduler.expression>", "eval")
            self._factor(0)
        except Exception as err:
            raise ConfigError(
                f"scheduler.scheduler.expression={expression!r} cannot be evaluated: {err}."
            ) from err
        super().__init__(optimizer, lr_lambda=self._factor, last_epoch=last_epoch)

    def _factor(self, epoch: int) -> float:
        names = {k: getattr(math, k) for k in dir(math) if not k.startswith("_")}
        return float(eval(self._code, {"__builtins__": {}}, {**names, "epoch": epoch}))

    def state_dict(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambdas", "_code")}
        state["lr_lambdas"] = [None]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = {k: v for k, v in state_dict.items() if k != "lr_lambdas"}
        self.__dict__.update(state)
        self._code = compile(self.expression, "<scheduler.expression>", "eval")
