"""`python -m trainlab.tune lr [training overrides]`: an LR range test on the composed training config.

    python -m trainlab.tune lr                                   # the default recipe
    python -m trainlab.tune lr optim=sgd data=cifar10_jpeg data.root=DIR
    python -m trainlab.tune lr optim=adam min_lr=1e-6 max_lr=1 num_training=200 out=DIR
    options: min_lr (1e-8), max_lr (1), num_training (100 steps), out=DIR (default
    outputs/lr_find/<date>/<time>); every other key=value is a training override, as for `python -m trainlab`

The range test (Smith, "Cyclical Learning Rates for Training Neural Networks", 2017, section 3.3; fastai's
`lr_find`) trains `num_training` optimizer steps while the learning rate grows exponentially from min_lr
to max_lr, records the smoothed training loss at each, and stops early once the loss exceeds 4 times its
best. It runs through Lightning's `Tuner.lr_find` on the objects a real run builds (data, model, loss,
optimizer, precision, devices), after the same preflight; no logger or callback takes part, nothing is
written to outputs/ but the curve, and the model starts from the run's seeded initial weights.

Every param group of the optimizer gets the same lr during the test (groups with their own `lr` or
`lr_scale` in optim.param_groups keep them in the real run), so the suggestion is for `optim.lr`. Lightning
suggests the lr where the smoothed loss falls fastest (the steepest negative slope of loss against lr);
read the curve before taking the number. Writes
lr_find.png (the curve, the suggestion marked), lr_find.csv (lr, loss) and TensorBoard scalars
(`lr_find/loss` and `lr_find/lr` by step) into DIR. Refuses optimizers for which a range test means
nothing (LBFGS, Rprop), saying why.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from trainlab.core.logs import print_error
from trainlab.errors import ConfigError, TrainlabError, asked_for_help, user_message

USAGE = (
    "python -m trainlab.tune lr [min_lr=1e-8] [max_lr=1] [num_training=100] [out=DIR] [training overrides]"
)
OPTIONS = {"min_lr": 1e-8, "max_lr": 1.0, "num_training": 100, "out": ""}
# The tool's own overrides come after the user's, so they win: the test trains on one device, with no
# logger or callback of the run, and without testing.
FORCED = ["logger=none", "callbacks=none", "test=false", "trainer.devices=1", "trainer.num_nodes=1"]
NO_RANGE_TEST = {
    "torch.optim.LBFGS": "LBFGS searches its own step length along each direction (up to max_iter "
    "evaluations per step), so a range over its lr measures the line search, not the lr",
    "torch.optim.Rprop": "Rprop ignores gradient magnitudes and grows or shrinks a per-weight step from the "
    "gradient's sign, so its lr is only the first step size and a range over it shows nothing",
}
_result: list[Any] = []  # what the Hydra job hands back to main: the finder, or a user error


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if asked_for_help(argv, __doc__):
        return 0
    if not argv or argv[0] != "lr":
        print_error(f"Say what to tune: lr (the learning rate; the only tuner so far). {USAGE}")
        return 2
    if {"-m", "--multirun"} & set(argv) or any(word.startswith("hparams_search=") for word in argv):
        print_error(
            "The range test runs one configuration: drop -m / hparams_search and run it once per optimizer. "
            + USAGE
        )
        return 2
    try:
        options, overrides = split_options(argv[1:])
    except ConfigError as err:
        print_error(str(err))
        return 2
    out = Path(options["out"]).expanduser() if options["out"] else default_out()
    return lr_find(overrides, options, out)


def split_options(words: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """The tool's own key=value options (typed as OPTIONS), and the training overrides (the rest)."""
    options, overrides = dict(OPTIONS), []
    for word in words:
        key, sep, value = word.partition("=")
        close = difflib.get_close_matches(key, OPTIONS, n=1, cutoff=0.85)
        if sep and key not in OPTIONS and close:
            raise ConfigError(f"{key}={value}: did you mean {close[0]}={value}? {USAGE}")
        if key not in OPTIONS or not sep:
            overrides.append(word)
            continue
        if key == "out":
            options[key] = value
            continue
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{key}={value} is not a number. {USAGE}") from None
        if not math.isfinite(number) or (key == "num_training" and number != int(number)):
            kind = "a whole number of steps" if key == "num_training" else "a finite number"
            raise ConfigError(f"{key}={value}: {kind} is needed. {USAGE}")
        options[key] = type(OPTIONS[key])(number)
    if not 0 < options["min_lr"] < options["max_lr"]:
        raise ConfigError(
            f"min_lr={options['min_lr']} and max_lr={options['max_lr']}: need 0 < min_lr < max_lr."
        )
    if options["num_training"] < 3:
        raise ConfigError(
            f"num_training={options['num_training']}: the curve needs at least 3 steps (100 is usual)."
        )
    return options, overrides


def default_out() -> Path:
    return Path("outputs") / "lr_find" / time.strftime("%Y-%m-%d") / time.strftime("%H-%M-%S")


def lr_find(overrides: Sequence[str], options: dict[str, Any], out: Path) -> int:
    """The range test in a throw-away Hydra run dir; the curve goes into `out`, the suggestion to stdout."""
    from trainlab.signals import stop_on_signals
    from trainlab.training.preflight import commandline

    stop_on_signals()
    commandline.install()
    if not sys.stderr.isatty():
        os.environ.setdefault("TQDM_DISABLE", "1")  # Lightning's range test draws a tqdm bar: not into a file
    _result.clear()
    with tempfile.TemporaryDirectory(prefix="trainlab-lr-find-") as tmp:
        argv = [*overrides, *FORCED, f"hydra.run.dir={tmp}", "hydra.output_subdir=null"]
        saved, sys.argv = sys.argv, [sys.argv[0], *argv]
        try:
            _lr_job(options)
        finally:
            sys.argv = saved
    if not _result:
        return 1  # Hydra reported its own error
    found = _result.pop()
    if isinstance(found, TrainlabError):
        print_error(user_message(found))
        return 1
    finder, chosen = found
    report(finder, chosen, options, out)
    return 0


def _lr_job(options: dict[str, Any]) -> None:
    @hydra.main(version_base="1.3", config_path="conf", config_name="train")
    def job(cfg: DictConfig) -> None:
        try:
            _result.append(range_test(cfg, options))
        except TrainlabError as err:
            _result.append(err)

    job()


def range_test(cfg: DictConfig, options: dict[str, Any]) -> tuple[Any, str]:
    from lightning.pytorch.tuner import Tuner

    from trainlab.training.assemble import chosen_options
    from trainlab.training.train import preflight

    target = str(cfg.optim.get("_target_", ""))
    if target in NO_RANGE_TEST:
        raise ConfigError(
            f"An LR range test means nothing for {target}: {NO_RANGE_TEST[target]}. Pick another optim."
        )
    datamodule, trainer, module = preflight(cfg)
    # the test trains and validates through the module: its per-epoch lines would read like a run's
    logging.getLogger("trainlab.core.module").setLevel(logging.WARNING)
    finder = Tuner(trainer).lr_find(
        module,
        datamodule=datamodule,
        min_lr=options["min_lr"],
        max_lr=options["max_lr"],
        num_training=int(options["num_training"]),
        update_attr=False,
    )
    groups = len(module.build_optimizer().param_groups)
    # the range test replaces the scheduler with its own exponential ramp
    what = ", ".join(
        f"{group}={name}" for group, name in chosen_options().items() if name and group != "scheduler"
    )
    return finder, f"{what} ({groups} param group{'s' * (groups > 1)} at one lr)"


def report(finder: Any, chosen: str, options: dict[str, Any], out: Path) -> None:
    """The curve into `out` (PNG, CSV, TensorBoard), the suggestion on stdout."""
    from torch.utils.tensorboard import SummaryWriter

    from trainlab.atomic import atomic_write_csv
    from trainlab.loggers.plots import save_figure
    from trainlab.records.files import tensorboard_command

    lrs, losses = finder.results.get("lr", []), finder.results.get("loss", [])
    suggested = finder.suggestion() if len(lrs) > 12 else None
    out.mkdir(parents=True, exist_ok=True)
    rows = [{"lr": f"{lr:.6g}", "loss": f"{loss:.6g}"} for lr, loss in zip(lrs, losses, strict=True)]
    atomic_write_csv(out / "lr_find.csv", rows, ["lr", "loss"])
    writer = SummaryWriter(str(out / "tensorboard"))
    for step, (lr, loss) in enumerate(zip(lrs, losses, strict=True)):
        writer.add_scalar("lr_find/loss", loss, step)
        writer.add_scalar("lr_find/lr", lr, step)
    writer.close()
    figure = finder.plot(suggest=suggested is not None, show=False)
    figure.axes[0].set_title(f"LR range test: {chosen}", fontsize=8)
    figure.axes[0].set_ylabel("training loss (smoothed)")
    kept = [loss for loss in losses[10:-1] if math.isfinite(loss)]
    if kept:  # the diverged last points would flatten the curve that matters
        low, high = min(kept), max(kept)
        figure.axes[0].set_ylim(low - 0.05 * (high - low), min(high, 4 * low) + 0.05 * (high - low))
    save_figure(figure, out / "lr_find.png")
    print(
        f"trainlab.tune lr: {len(lrs)} steps, lr {options['min_lr']:g} -> {options['max_lr']:g} "
        f"(exponential), {chosen}"
        + (" (stopped early: the loss passed 4x its best)" if len(lrs) < options["num_training"] else "")
    )
    if suggested is None:
        print(
            "no suggestion: too few steps before the loss diverged; lower max_lr or raise num_training "
            f"(the curve: {out / 'lr_find.png'})"
        )
    else:
        print(
            f"suggested: optim.lr={suggested:.3g}   (where the smoothed loss falls fastest, Lightning's rule)"
        )
    print(
        f"curve: {out / 'lr_find.png'}, {out / 'lr_find.csv'} | "
        f"view: {tensorboard_command(out / 'tensorboard')}"
    )


if __name__ == "__main__":
    sys.exit(main())
