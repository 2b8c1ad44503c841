"""Completing a scheduler config into Lightning's lr_scheduler dict, plus what torch lacks.

A conf/scheduler/*.yaml holds a partial torch scheduler under `scheduler` and Lightning's keys
(`interval`, `frequency`, `monitor`) beside it, plus trainlab's `warmup`: that many intervals of linear
warm-up put in front of any scheduler with torch's SequentialLR.

Run-length arguments (`T_max`, `total_steps`, `total_iters`, `step_size`, `milestones`, `T_0`,
`step_size_up`, `warmup`) left null in a config are derived from the run by `resolve_lengths`: the share
given under `lengths` of the schedule's length, counted in the scheduler's own unit (epochs for
`interval: epoch`, optimizer steps for `interval: step`, gradient accumulation included), after the
warm-up. A value set explicitly is kept as it is, in that unit.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim.lr_scheduler import LinearLR, LRScheduler, ReduceLROnPlateau, SequentialLR

from trainlab.errors import ConfigError

LIGHTNING_KEYS = ("interval", "frequency", "monitor", "strict", "name")
SchedulerFactory = Callable[..., LRScheduler | ReduceLROnPlateau]


@dataclass(frozen=True)
class RunLength:
    """How long a run trains: `epochs` (trainer.max_epochs; None: unbounded), optimizer steps per epoch
    (batches per device after trainer.limit_train_batches, divided by trainer.accumulate_grad_batches,
    rounded up) and trainer.max_steps (-1: no limit). Lightning stops at whichever ends first."""

    epochs: int | None
    steps_per_epoch: int
    max_steps: int = -1

    @property
    def steps(self) -> int | None:
        """Optimizer steps of the whole run (Lightning's `trainer.estimated_stepping_batches`)."""
        by_epochs = None if self.epochs is None else self.epochs * self.steps_per_epoch
        if self.max_steps is not None and self.max_steps > 0:
            return self.max_steps if by_epochs is None else min(by_epochs, self.max_steps)
        return by_epochs

    @property
    def epochs_trained(self) -> int | None:
        """Epochs the run enters: max_steps can end it within an earlier epoch."""
        steps = self.steps
        return None if steps is None else math.ceil(steps / max(self.steps_per_epoch, 1))

    def intervals(self, interval: str, frequency: int = 1) -> int | None:
        """Scheduler steps in the run: epochs or optimizer steps, every `frequency` of them (Lightning
        counts a step interval's frequency within each epoch)."""
        frequency = max(int(frequency), 1)
        if interval == "epoch":
            return None if self.epochs_trained is None else self.epochs_trained // frequency
        if self.steps is None:
            return None
        full_epochs, rest = divmod(self.steps, max(self.steps_per_epoch, 1))
        return full_epochs * (self.steps_per_epoch // frequency) + rest // frequency

    def describe(self) -> str:
        return (
            f"{self.epochs_trained} epochs x {self.steps_per_epoch} optimizer steps"
            + (f", trainer.max_steps={self.max_steps}" if self.max_steps and self.max_steps > 0 else "")
            + f" = {self.steps} steps"
        )


def resolve_lengths(node: MutableMapping[str, Any], run: RunLength) -> list[str]:
    """Fill the run-length arguments a scheduler config leaves null from `run`, in place.

    `node` is a conf/scheduler section (a DictConfig opened for writing, or a dict). Returns one
    'key=value (how)' text per derived value, for the console. Raises ConfigError for a length that
    cannot be derived (a null warmup without a share, an unbounded run, a warm-up as long as the run).
    """
    shares = dict(node.get("lengths") or {})
    scheduler = node.get("scheduler")
    interval = node.get("interval", "epoch")
    if interval not in ("epoch", "step"):
        raise ConfigError(f"scheduler.interval={interval!r} must be 'epoch' or 'step'.")
    unit = "epochs" if interval == "epoch" else "optimizer steps"
    frequency = int(node.get("frequency") or 1)
    derived: list[str] = []

    def total() -> int:
        count = run.intervals(interval, frequency)
        if count is None:
            raise ConfigError(
                "The scheduler's run-length arguments are derived from the run's length, which is unbounded "
                "(trainer.max_epochs=-1 and trainer.max_steps=-1): set trainer.max_epochs, or set the "
                "scheduler's own lengths ("
                + ", ".join(f"scheduler.{k}" if k == "warmup" else f"scheduler.scheduler.{k}" for k in shares)
                + ")."
            )
        return count

    if node.get("warmup", 0) is None:
        if "warmup" not in shares:
            raise ConfigError("scheduler.warmup is null: set it (intervals of warm-up) or lengths.warmup.")
        node["warmup"] = _share(shares["warmup"], total(), "scheduler.lengths.warmup")
        derived.append(f"warmup={node['warmup']} ({shares['warmup']} x {total()} {unit})")
    warmup = int(node.get("warmup") or 0)
    for key, share in shares.items():
        if key == "warmup" or scheduler is None:
            continue
        if key not in scheduler:
            raise ConfigError(
                f"scheduler.lengths.{key}: {scheduler.get('_target_')} has no argument {key}; "
                "lengths names the scheduler arguments to derive from the run's length."
            )
        if scheduler[key] is not None:
            continue
        length = total() - warmup
        if total() < 1:
            raise ConfigError(
                f"The run trains no {unit} to schedule (trainer.max_epochs, trainer.limit_train_batches, "
                f"trainer.max_steps), so scheduler.scheduler.{key} cannot be derived: train at least one."
            )
        if length < 1:
            raise ConfigError(
                f"scheduler.warmup={warmup} leaves no room for the schedule: the run has {total()} {unit}. "
                "Lower scheduler.warmup or train longer."
            )
        value = (
            [_share(s, length, f"scheduler.lengths.{key}") for s in share]
            if isinstance(share, list | tuple) or hasattr(share, "__len__")
            else _share(share, length, f"scheduler.lengths.{key}")
        )
        scheduler[key] = value
        after = f" after {warmup} of warm-up" if warmup else ""
        derived.append(f"{key}={value} ({_plain(share)} x {length} {unit}{after})")
    return derived


def _share(share: Any, length: int, key: str) -> int:
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
        raise ConfigError(f"{key}={share!r} must be a share of the schedule's length in (0, 1].")
    return max(1, round(share * length))


def _plain(share: Any) -> Any:
    return list(share) if hasattr(share, "__len__") and not isinstance(share, str) else share


def build_scheduler(spec: Mapping[str, Any], optimizer: torch.optim.Optimizer) -> dict[str, Any] | None:
    """Lightning's lr_scheduler config for `spec` (lengths already resolved), or None without one."""
    factory: SchedulerFactory | None = spec.get("scheduler")
    warmup = spec.get("warmup") or 0
    if factory is None and not warmup:
        return None
    if spec.get("interval", "epoch") not in ("epoch", "step"):
        raise ConfigError(f"scheduler.interval={spec.get('interval')!r} must be 'epoch' or 'step'.")
    scheduler = _complete(factory, optimizer, spec.get("lengths") or {}) if factory is not None else None
    if warmup:
        scheduler = with_warmup(
            scheduler, optimizer, int(warmup), float(spec.get("warmup_start_factor", 0.1))
        )
    settings = {k: spec[k] for k in LIGHTNING_KEYS if spec.get(k) is not None}
    return {"scheduler": scheduler, **settings}


def _complete(factory: SchedulerFactory, optimizer: torch.optim.Optimizer, lengths: Mapping[str, Any]) -> Any:
    keywords = getattr(factory, "keywords", {})
    unresolved = [key for key in lengths if key != "warmup" and key in keywords and keywords[key] is None]
    if unresolved:
        raise ConfigError(
            f"scheduler.scheduler.{unresolved[0]} is null and was not derived from the run's length "
            "(trainlab.optim.schedulers.resolve_lengths): set it explicitly."
        )
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


SCHEDULE_KEYS = ("initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum")  # set by schedulers
CYCLED_KEYS = ("lr", "momentum", "betas")  # what schedulers move


def place_schedule(
    spec: Mapping[str, Any],
    optimizer: torch.optim.Optimizer,
    steps_taken: int,
    configured: list[Mapping[str, Any]] = (),
) -> dict[str, Any] | None:
    """The schedule of `spec` built afresh and stepped `steps_taken` times: where a run that followed it
    from the start would be now. For a resumed run whose schedule changed (a longer run, another
    scheduler): the optimizer's state is the checkpoint's, its lr that of the old schedule.

    `configured` are the param groups as the config builds them: each group first gets back their lr and
    momentum (or betas) and loses what the old scheduler set (one-cycle's max_lr, ...), as in a fresh
    run; groups without one (a fine-tuned backbone added while training) go back to their
    `initial_lr`. Raises ConfigError when the run is too short for the position.
    """
    for index, group in enumerate(optimizer.param_groups):
        if index < len(configured):
            group.update({k: configured[index][k] for k in CYCLED_KEYS if k in configured[index]})
            for key in SCHEDULE_KEYS:
                group.pop(key, None)
        elif "initial_lr" in group:
            group["lr"] = group["initial_lr"]
    config = build_scheduler(spec, optimizer)
    if config is None:
        return None
    scheduler = config["scheduler"]
    with warnings.catch_warnings():
        # stepping a scheduler with no optimizer step in between is the point here, not a mistake
        warnings.filterwarnings("ignore", message=r".*lr_scheduler\.step\(\)")
        try:
            for _ in range(steps_taken):
                scheduler.step()
        except ValueError as err:  # one-cycle past its total_steps
            raise ConfigError(
                f"The resumed run's schedule cannot be placed at its step {steps_taken}: {err}. The run is "
                "shorter than the checkpoint's position in it (raise trainer.max_epochs), or its optimizer "
                "steps per epoch changed (data.batch_size, trainer.limit_train_batches, "
                "trainer.accumulate_grad_batches): set the scheduler's lengths explicitly."
            ) from err
    return config
