"""`python -m trainlab.tune lr|batch_size [training overrides]`: tune the composed training config.

    python -m trainlab.tune lr                                   # the default recipe
    python -m trainlab.tune lr optim=sgd data=cifar10_jpeg data.root=DIR
    python -m trainlab.tune lr optim=adam min_lr=1e-6 max_lr=1 num_training=200 out=DIR
    options: min_lr (1e-8), max_lr (1), num_training (100 steps), out=DIR (default
    outputs/lr_find/<date>/<time>); every other key=value is a training override, as for `python -m trainlab`
    python -m trainlab.tune batch_size data=cifar10_jpeg data.root=DIR model=fastnet
    options: mode (binsearch | power), margin (0.1), steps_per_trial (3), init_val (2), max_trials (25),
    max_val (8192)

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

The batch-size finder (Lightning's `Tuner.scale_batch_size`) trains `steps_per_trial` steps (and as many
validation batches) at growing batch sizes on one device: doubling from init_val until a size runs out
of memory (or reaches the training split's size or max_val), then, in mode=binsearch, bisecting between
the last size that fit and the first that did not, and taking `margin` off the result (Lightning's
margin, applied in binsearch mode; in power mode the result is the last power of two that fit). It finds
the largest *per-device micro-batch*; data.batch_size is the global batch of one optimizer step, so the
override it prints multiplies it by the run's trainer.accumulate_grad_batches and devices.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from trainlab.core.logs import print_error
from trainlab.errors import ConfigError, TrainlabError, asked_for_help, user_message

USAGES = {
    "lr": "python -m trainlab.tune lr [min_lr=1e-8] [max_lr=1] [num_training=100] [out=DIR] "
    "[training overrides]",
    "batch_size": "python -m trainlab.tune batch_size [mode=binsearch|power] [margin=0.1] "
    "[steps_per_trial=3] [init_val=2] [max_trials=25] [max_val=8192] [training overrides]",
}
TOOLS = {
    "lr": {"min_lr": 1e-8, "max_lr": 1.0, "num_training": 100, "out": ""},
    "batch_size": {
        "mode": "binsearch",
        "margin": 0.1,
        "steps_per_trial": 3,
        "init_val": 2,
        "max_trials": 25,
        "max_val": 8192,
    },
}
TEXT_OPTIONS = {"out": None, "mode": ("binsearch", "power")}  # the allowed values (None: any)
# The tool's own overrides come after the user's, so they win: the tools train on one device, with no
# logger or callback of the run, and without testing (the batch-size finder reads the run's devices and
# accumulation first, to turn the micro-batch it finds into the run's global batch).
FORCED = ["logger=none", "callbacks=none", "test=false"]
ONE_DEVICE = ["trainer.devices=1", "trainer.num_nodes=1"]
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
    if not argv or argv[0] not in TOOLS:
        print_error(
            "Say what to tune: lr (an LR range test) or batch_size (the largest batch that fits). "
            + " | ".join(USAGES.values())
        )
        return 2
    tool = argv[0]
    if {"-m", "--multirun"} & set(argv) or any(word.startswith("hparams_search=") for word in argv):
        print_error(
            "The tuner runs one configuration: drop -m / hparams_search and run it once per configuration. "
            + USAGES[tool]
        )
        return 2
    try:
        options, overrides = split_options(argv[1:], tool)
    except ConfigError as err:
        print_error(str(err))
        return 2
    if tool == "batch_size":
        return run_tool(tool, overrides, options, None)
    out = Path(options["out"]).expanduser() if options["out"] else default_out()
    return run_tool(tool, overrides, options, out)


def split_options(words: Sequence[str], tool: str = "lr") -> tuple[dict[str, Any], list[str]]:
    """The tool's own key=value options (typed as TOOLS[tool]), and the training overrides (the rest)."""
    defaults, usage = TOOLS[tool], USAGES[tool]
    options, overrides = dict(defaults), []
    for word in words:
        key, sep, value = word.partition("=")
        close = difflib.get_close_matches(key, defaults, n=1, cutoff=0.85)
        if sep and key not in defaults and close:
            raise ConfigError(f"{key}={value}: did you mean {close[0]}={value}? {usage}")
        if key not in defaults or not sep:
            overrides.append(word)
            continue
        if key in TEXT_OPTIONS:
            allowed = TEXT_OPTIONS[key]
            if allowed is not None and value not in allowed:
                raise ConfigError(f"{key}={value}: one of {', '.join(allowed)} is needed. {usage}")
            options[key] = value
            continue
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{key}={value} is not a number. {usage}") from None
        whole = isinstance(defaults[key], int)
        if not math.isfinite(number) or (whole and number != int(number)):
            kind = "a whole number" if whole else "a finite number"
            raise ConfigError(f"{key}={value}: {kind} is needed. {usage}")
        options[key] = type(defaults[key])(number)
    (check_lr_options if tool == "lr" else check_batch_size_options)(options)
    return options, overrides


def check_lr_options(options: dict[str, Any]) -> None:
    if not 0 < options["min_lr"] < options["max_lr"]:
        raise ConfigError(
            f"min_lr={options['min_lr']} and max_lr={options['max_lr']}: need 0 < min_lr < max_lr."
        )
    if options["num_training"] < 3:
        raise ConfigError(
            f"num_training={options['num_training']}: the curve needs at least 3 steps (100 is usual)."
        )


def check_batch_size_options(options: dict[str, Any]) -> None:
    if not 0 <= options["margin"] < 1:
        raise ConfigError(f"margin={options['margin']}: a share in [0, 1) is needed (0.1 takes 10% off).")
    for key in ("steps_per_trial", "init_val", "max_trials", "max_val"):
        if options[key] < 1:
            raise ConfigError(f"{key}={options[key]}: at least 1 is needed. {USAGES['batch_size']}")
    if options["init_val"] > options["max_val"]:
        raise ConfigError(f"init_val={options['init_val']} is above max_val={options['max_val']}.")


def default_out() -> Path:
    return Path("outputs") / "lr_find" / time.strftime("%Y-%m-%d") / time.strftime("%H-%M-%S")


def run_tool(tool: str, overrides: Sequence[str], options: dict[str, Any], out: Path | None) -> int:
    """The tool in a throw-away Hydra run dir; the lr curve goes into `out`, the result to stdout."""
    from trainlab.signals import stop_on_signals
    from trainlab.training.preflight import commandline

    stop_on_signals()
    commandline.install()
    if not sys.stderr.isatty():
        os.environ.setdefault("TQDM_DISABLE", "1")  # Lightning's range test draws a tqdm bar: not into a file
    _result.clear()
    with tempfile.TemporaryDirectory(prefix="trainlab-lr-find-") as tmp:
        forced = FORCED + (ONE_DEVICE if tool == "lr" else [])
        argv = [*overrides, *forced, f"hydra.run.dir={tmp}", "hydra.output_subdir=null"]
        saved, sys.argv = sys.argv, [sys.argv[0], *argv]
        try:
            _job(tool, options)
        finally:
            sys.argv = saved
    if not _result:
        return 1  # Hydra reported its own error
    found = _result.pop()
    if isinstance(found, TrainlabError):
        print_error(user_message(found))
        return 1
    if tool == "batch_size":
        print(found)
        return 0
    finder, chosen = found
    assert out is not None
    report(finder, chosen, options, out)
    return 0


def _job(tool: str, options: dict[str, Any]) -> None:
    @hydra.main(version_base="1.3", config_path="conf", config_name="train")
    def job(cfg: DictConfig) -> None:
        try:
            _result.append((range_test if tool == "lr" else batch_size_search)(cfg, options))
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


def batch_size_search(cfg: DictConfig, options: dict[str, Any]) -> str:
    """The largest per-device micro-batch that trains (Lightning's finder), as the report to print."""
    from lightning.pytorch.tuner import Tuner

    from trainlab.training.assemble import chosen_options
    from trainlab.training.train import preflight

    accumulate = int(cfg.trainer.get("accumulate_grad_batches") or 1)
    devices, nodes = cfg.trainer.get("devices"), int(cfg.trainer.get("num_nodes") or 1)
    world = devices * nodes if isinstance(devices, int) and devices > 0 else None
    cfg.trainer.accumulate_grad_batches, cfg.trainer.devices, cfg.trainer.num_nodes = 1, 1, 1
    configured = int(cfg.data.batch_size)
    cfg.data.batch_size = int(options["init_val"])  # preflight's rehearsal step: the smallest trial
    logging.getLogger("trainlab.training.assemble").setLevel(logging.WARNING)  # the run's length at init_val
    datamodule, trainer, module = preflight(cfg)
    train_size = sum(datamodule.class_counts)
    trials = _Trials(module, lambda: min(int(datamodule.batch_size), train_size))
    quiet = [logging.getLogger(name) for name in ("lightning.pytorch", "trainlab.core.module")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:  # a line per trial and per stopped fit would bury the answer
        logger.setLevel(logging.WARNING)
    try:
        found = Tuner(trainer).scale_batch_size(
            module,
            datamodule=datamodule,
            mode=options["mode"],
            steps_per_trial=int(options["steps_per_trial"]),
            init_val=int(options["init_val"]),
            max_trials=int(options["max_trials"]),
            margin=float(options["margin"]),
            max_val=int(options["max_val"]),
        )
    finally:
        trials.remove()
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)
    what = ", ".join(f"{group}={name}" for group, name in chosen_options().items() if name)
    if not trials.trained:
        raise TrainlabError(
            f"No batch size trained on one device ({what}): batch {options['init_val']} already ran out "
            "of memory. Use a smaller model or data.image_size, or trainer.precision=bf16-mixed."
        )
    largest = max(trials.trained)
    if trials.out_of_memory:
        # below the smallest size that failed; binsearch takes the margin off the boundary it found
        found = min(int(found or largest), largest)
        why = f"{min(trials.out_of_memory)} ran out of memory" + (
            f"; {options['margin']:.0%} margin taken off {largest}" if found < largest else ""
        )
    elif largest >= train_size:
        found, why = train_size, f"the whole training split ({train_size} images) fits in one batch"
    else:
        found, why = (
            largest,
            f"nothing ran out of memory; max_val={options['max_val']} and above untried",
        )
    tried = ", ".join(str(size) for size in sorted(trials.trained))
    if trials.out_of_memory:
        tried += f"; out of memory: {', '.join(str(size) for size in sorted(trials.out_of_memory))}"
    lines = [
        f"trainlab.tune batch_size: {what}; one device, {options['steps_per_trial']} steps per trial, mode "
        f"{options['mode']}",
        f"trained: {tried}",
        f"largest micro-batch per device: {found} ({why})",
        f"suggested: data.batch_size={found}   (one device, no accumulation; configured: {configured})",
    ]
    if accumulate > 1 or (world or 1) > 1:
        if world is None:
            lines.append(
                f"with trainer.accumulate_grad_batches={accumulate} on N devices: data.batch_size="
                f"{found * accumulate} x N (data.batch_size is the global batch of one optimizer step)"
            )
        else:
            lines.append(
                f"for this run (trainer.accumulate_grad_batches={accumulate}, {world} device(s)): "
                f"data.batch_size={found * accumulate * world}   (the global batch of one optimizer step)"
            )
    return "\n".join(lines)


class _Trials:
    """The batch sizes the finder trained steps with, and those that ran out of memory, seen from the
    module's training_step (Lightning's finder returns only its final number, which in some cases was
    never tried: a size capped at max_val, or binsearch's margin). `size()` is the size on trial (an
    epoch's last, smaller batch counts as its trial's size)."""

    def __init__(self, module: Any, size: Callable[[], int]) -> None:
        from lightning.pytorch.utilities.memory import is_oom_error

        self.trained: set[int] = set()
        self.out_of_memory: set[int] = set()
        self.module = module
        step = module.training_step

        def training_step(batch: Any, batch_idx: int) -> Any:
            try:
                result = step(batch, batch_idx)
            except RuntimeError as err:
                if is_oom_error(err):
                    self.out_of_memory.add(size())
                raise
            self.trained.add(size())
            return result

        module.training_step = training_step

    def remove(self) -> None:
        del self.module.training_step


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
