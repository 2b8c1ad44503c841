"""The `trainlab` command: a Hydra app whose config tree ships inside the package (trainlab/conf)."""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from trainlab.core.logs import print_error
from trainlab.errors import TrainlabError, user_message

log = logging.getLogger("trainlab")


def interrupted_exit_code(err: BaseException) -> int:
    """128 + the signal that stopped the run (143 SIGTERM, 130 SIGINT), as schedulers and shells expect;
    else the exit's own code, never 0."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from trainlab.signals import last_signal

    if isinstance(err, SIGTERMException):
        return 128 + signal.SIGTERM
    code = err.code if isinstance(err, SystemExit) else None
    if isinstance(code, int) and code > 128:
        return code
    if last_signal() is not None:
        return 128 + last_signal()
    return code if isinstance(code, int) and code != 0 else 1


def main() -> None:
    """The `trainlab` / `python -m trainlab` entry: Hydra's command line, start-up errors explained,
    signals handled from the first line on."""
    from trainlab.signals import stop_on_signals
    from trainlab.training.preflight import commandline

    if not sys.stderr.isatty():
        # the no-color.org convention, which colorlog (Optuna's log colours) and others follow: escape
        # codes in a log file or a pipe are noise
        os.environ.setdefault("NO_COLOR", "1")
    stop_on_signals()
    commandline.install()
    train_job()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def train_job(cfg: DictConfig) -> float | None:
    """Train one configuration; returns best val/acc so Hydra sweepers (e.g. Optuna) can maximize it.

    The run dir is held by this process for the job (trainlab.records.lock); its status.json says how
    the run ended (completed, failed with the error, interrupted), for the run browser and sweep
    summaries.
    """
    from trainlab.atomic import remove_partial_writes
    from trainlab.records.lock import RunDirInUse, run_dir_lock
    from trainlab.records.status import is_rank_zero

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        with run_dir_lock(run_dir) if is_rank_zero() else contextlib.nullcontext():
            if is_rank_zero():
                remove_partial_writes(run_dir, recursive=True)  # what a killed writer left, anywhere
            return _run_job(cfg, run_dir)
    except RunDirInUse as err:  # the run dir and its status.json belong to the other process
        return _report(err)


def _run_job(cfg: DictConfig, run_dir: Path) -> float | None:
    from trainlab.callbacks.interrupt import TrainingInterrupted
    from trainlab.checkpoints.resume import checkpoint_to_resume, nothing_left_to_train
    from trainlab.records.status import mark_finished, mark_running
    from trainlab.signals import last_signal
    from trainlab.training.train import train  # heavy imports after Hydra has parsed the command line

    try:
        found = [checkpoint_to_resume(cfg.get("ckpt_path"), Path(cfg.paths.output_dir))]
        finished = found[0] and nothing_left_to_train(*found[0], cfg.trainer)
    except TrainlabError as err:
        mark_running(run_dir)
        err.at_start = True  # type: ignore[attr-defined]
        return _failed(run_dir, err)
    if finished:
        # a requeued job of a run that completed: its files and status stay as they are
        print(f"trainlab: {finished}")
        return None
    mark_running(run_dir)
    try:
        metrics = train(cfg, resume=found.pop())  # not kept here: a checkpoint can be large
    except TrainlabError as err:
        return _failed(run_dir, err)
    except (KeyboardInterrupt, SystemExit) as err:
        # trainlab stops on SIGTERM/SIGINT with a checkpoint while fitting (TrainingInterrupted), at once
        # elsewhere; Lightning turns SIGTERM into SIGTERMException, a SystemExit without a code, and a
        # KeyboardInterrupt into exit 1: a stopped run must never look like a finished one
        if isinstance(err, TrainingInterrupted):
            message = str(err)
        else:
            signum = last_signal()
            cause = signal.Signals(signum).name if signum else type(err).__name__
            message = f"interrupted by {cause} ({type(err).__name__}); {_resume_hint(run_dir)}"
        mark_finished(run_dir, "interrupted", message)
        print(f"trainlab: {message}", file=sys.stderr)
        sys.exit(interrupted_exit_code(err))
    except Exception as err:
        mark_finished(run_dir, "failed", f"{type(err).__name__}: {err}")
        raise
    mark_finished(run_dir, "completed")
    return metrics.get("val/acc_best")


def _resume_hint(run_dir: Path) -> str:
    last = run_dir / "checkpoints" / "last.ckpt"
    if last.is_file():
        return (
            f"the last checkpoint is {last}: the same command plus hydra.run.dir={run_dir} ckpt_path=last "
            f"resumes from it (or tests it when training had ended): {resume_command(run_dir)}"
        )
    return "no checkpoint was written yet: run the command again"


def resume_command(run_dir: Path) -> str:
    """The command line that resumes this job in its run dir, ready to paste (this Python, the job's
    own overrides)."""
    keep = [o for o in HydraConfig.get().overrides.task if not o.startswith(("hydra.run.dir=", "ckpt_path="))]
    words = [sys.executable, "-m", "trainlab", *keep, f"hydra.run.dir={run_dir}", "ckpt_path=last"]
    return " ".join(shlex.quote(word) for word in words)


def _report(err: TrainlabError) -> None:
    """One paragraph on stderr and exit 1 (in a sweep: logged, and the other jobs run)."""
    message = user_message(err)
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        log.error("job failed: %s", message)
        return None
    print_error(message)
    sys.exit(1)


def _failed(run_dir: Path, err: TrainlabError) -> None:
    """A user error: recorded in status.json; one paragraph on stderr and exit 1 (in a sweep: the job
    is recorded as failed and the others run, see trainlab.records.sweep)."""
    from trainlab.records.status import mark_finished

    message = user_message(err)
    mark_finished(run_dir, "failed", message, at_start=bool(getattr(err, "at_start", False)))
    return _report(err)
