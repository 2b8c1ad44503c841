"""`python -m trainlab.playground optim=sgd,adam ...`: optimizers on analytic functions, plotted.

The tutorials' first optimizer lesson, for any configured optimizer: minimize y = 4x^2 from x = 2 with
several learning rates (and momenta), and the Rosenbrock valley from (-1.5, 2). Each (function,
optimizer, lr, momentum) run writes loss and position as TensorBoard scalars; per function, one PNG of
the loss curves and one of the trajectories; and a table of final losses is printed.

    python -m trainlab.playground optim=sgd,adam,lbfgs lr=0.01,0.1,0.125,0.2 momentum=0,0.9 steps=100
    options: optim=NAMES (conf/optim), function=quadratic,rosenbrock, lr=..., momentum=... (optimizers
    that have one), steps=N, out=DIR (default outputs/playground/<date>/<time>)
"""

from __future__ import annotations

import datetime
import functools
import inspect
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from torch.utils.tensorboard import SummaryWriter

from trainlab.core.build import build, shipped_options
from trainlab.errors import ConfigError, TrainlabError, asked_for_help


@dataclass(frozen=True)
class Function:
    name: str
    start: tuple[float, ...]
    minimum: tuple[float, ...]
    value: Callable[[torch.Tensor], torch.Tensor]


FUNCTIONS = {
    "quadratic": Function("quadratic", (2.0,), (0.0,), lambda x: 4 * x[0] ** 2),
    "rosenbrock": Function(
        "rosenbrock", (-1.5, 2.0), (1.0, 1.0), lambda p: (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2
    ),
}
DIVERGED = 1e12


@dataclass
class Run:
    function: str
    label: str
    losses: list[float] = field(default_factory=list)
    path: list[tuple[float, ...]] = field(default_factory=list)
    note: str = ""


def optimizer_factory(name: str) -> functools.partial:
    """The partial torch optimizer of conf/optim/<name>.yaml, without trainlab's own keys."""
    with initialize_config_module(config_module="trainlab.conf", version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[f"optim={name}", "paths.output_dir=.", "paths.data_dir=.", "paths.mlflow_dir=."],
        )
    node = OmegaConf.to_container(cfg.optim, resolve=True)
    node.pop("param_groups", None)
    node.pop("no_decay", None)
    return build("optim", OmegaConf.create(node))


def minimize(function: Function, factory: functools.partial, steps: int, **options: float) -> Run:
    point = torch.tensor(function.start, dtype=torch.float64, requires_grad=True)
    optimizer = factory(params=[point], **options)
    run = Run(function.name, "")
    run.path.append(tuple(point.tolist()))

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = function.value(point)
        loss.backward()
        return loss

    for _ in range(steps):
        loss = float(function.value(point.detach()))
        run.losses.append(loss)
        if not math.isfinite(loss) or loss > DIVERGED:
            run.note = f"diverged at step {len(run.losses) - 1}"
            break
        optimizer.step(closure)
        run.path.append(tuple(point.detach().tolist()))
    return run


def accepted_options(factory: functools.partial, momentum: float | None, lr: float) -> dict[str, float]:
    options = {"lr": lr}
    if momentum is not None and "momentum" in inspect.signature(factory.func).parameters:
        options["momentum"] = momentum
    return options


def play(
    optims: Sequence[str],
    functions: Sequence[str],
    lrs: Sequence[float | None],
    momenta: Sequence[float | None],
    steps: int,
    out: Path,
) -> list[Run]:
    runs: list[Run] = []
    writer_root = out / "tensorboard"
    for name in optims:
        factory = optimizer_factory(name)
        if factory.func is torch.optim.SparseAdam:
            print(f"skipping {name}: SparseAdam takes sparse gradients only; these functions give dense ones")
            continue
        for lr in lrs:
            lr = lr if lr is not None else factory.keywords.get("lr", 0.01)
            for momentum in momenta:
                options = accepted_options(factory, momentum, lr)
                if momentum is not None and "momentum" not in options and momentum != momenta[0]:
                    continue  # no momentum knob: one run per lr is enough
                label = name + "".join(f" {k}={v:g}" for k, v in options.items())
                for fname in functions:
                    run = minimize(FUNCTIONS[fname], factory, steps, **options)
                    run.label = label
                    runs.append(run)
                    _log(writer_root, run)
    for fname in functions:
        _plot(out, FUNCTIONS[fname], [r for r in runs if r.function == fname])
    return runs


def _log(root: Path, run: Run) -> None:
    writer = SummaryWriter(str(root / f"{run.function}-{run.label.replace(' ', '_')}"))
    for step, loss in enumerate(run.losses):
        if math.isfinite(loss):
            writer.add_scalar(f"playground/{run.function}/loss", loss, step)
    for step, point in enumerate(run.path):
        for axis, value in zip("xy", point, strict=False):
            writer.add_scalar(f"playground/{run.function}/{axis}", value, step)
    writer.close()


def _plot(out: Path, function: Function, runs: list[Run]) -> None:
    fig, ax = plt.subplots(figsize=(8, 5))
    for run in runs:
        ax.plot([max(v, 1e-16) for v in run.losses], label=run.label + (f" ({run.note})" if run.note else ""))
    ax.set(yscale="log", xlabel="step", ylabel="loss", title=f"{function.name}: loss")
    _save(fig, ax, out / f"{function.name}_loss.png")

    fig, ax = plt.subplots(figsize=(8, 5))
    if len(function.start) == 1:
        for run in runs:
            ax.plot([p[0] for p in run.path], label=run.label)
        ax.set(xlabel="step", ylabel="x", title=f"{function.name}: x over steps (minimum at 0)")
        ax.set_ylim(-3, 3)
    else:
        xs, ys = torch.meshgrid(torch.linspace(-2, 2, 200), torch.linspace(-1, 3, 200), indexing="xy")
        ax.contour(xs, ys, function.value(torch.stack([xs, ys])).log10(), levels=20, cmap="gray", alpha=0.5)
        for run in runs:
            ax.plot(
                [p[0] for p in run.path], [p[1] for p in run.path], marker=".", markersize=2, label=run.label
            )
        ax.plot(*function.minimum, "k*", markersize=12)
        ax.set(xlim=(-2, 2), ylim=(-1, 3), xlabel="x", ylabel="y", title=f"{function.name}: trajectories")
    _save(fig, ax, out / f"{function.name}_trajectory.png")


def _save(fig: plt.Figure, ax: plt.Axes, path: Path) -> None:
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def parse(argv: Sequence[str]) -> dict[str, list[str]]:
    args = {
        "optim": ["sgd", "adam"],
        "function": list(FUNCTIONS),
        "lr": [""],
        "momentum": [""],
        "steps": ["100"],
        "out": [""],
    }
    for token in argv:
        key, sep, value = token.partition("=")
        if not sep or key not in args:
            raise ConfigError(f"Unknown argument {token!r}: use key=value with key in {', '.join(args)}.")
        args[key] = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [o for o in args["optim"] if o not in shipped_options("optim")]
    if unknown:
        raise ConfigError(
            f"optim={','.join(unknown)} unknown; available: {', '.join(shipped_options('optim'))}."
        )
    bad = [f for f in args["function"] if f not in FUNCTIONS]
    if bad:
        raise ConfigError(f"function={','.join(bad)} unknown; available: {', '.join(FUNCTIONS)}.")
    return args


def _numbers(values: list[str], key: str) -> list[float | None]:
    try:
        return [float(v) if v else None for v in values] or [None]
    except ValueError as err:
        raise ConfigError(f"{key}={','.join(values)}: {err}.") from err


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if asked_for_help(argv, __doc__):
        return 0
    try:
        args = parse(argv)
        stamp = datetime.datetime.now().strftime("%Y-%m-%d/%H-%M-%S")
        out = Path(args["out"][0] if args["out"] and args["out"][0] else f"outputs/playground/{stamp}")
        out.mkdir(parents=True, exist_ok=True)
        steps = int(args["steps"][0])
        runs = play(
            args["optim"],
            args["function"],
            _numbers(args["lr"], "lr"),
            _numbers(args["momentum"], "momentum"),
            steps,
            out,
        )
    except (TrainlabError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{'function':<11} {'optimizer':<40} {'final loss':>12}  note")
    for run in runs:
        print(f"{run.function:<11} {run.label:<40} {run.losses[-1]:>12.4g}  {run.note}")
    print(f"plots and TensorBoard runs in {out} (tensorboard --logdir {out / 'tensorboard'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
