"""The `trainlab` command: a Hydra app whose config tree ships inside the package (trainlab/conf)."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from trainlab.errors import TrainlabError, user_message

log = logging.getLogger("trainlab")


def interrupted_exit_code(err: BaseException) -> int:
    """128 + SIGTERM (143) for a SIGTERM, as schedulers expect; else the exit's own code, never 0."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    if isinstance(err, SIGTERMException):
        return 128 + signal.SIGTERM
    code = err.code if isinstance(err, SystemExit) else None
    return code if isinstance(code, int) and code != 0 else 1


def main() -> None:
    """The `trainlab` / `python -m trainlab` entry: Hydra's command line, start-up errors explained."""
    from trainlab.preflight import commandline

    commandline.install()
    train_job()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def train_job(cfg: DictConfig) -> float | None:
    """Train one configuration; returns best val/acc so Hydra sweepers (e.g. Optuna) can maximize it.

    The run's status.json says how it ended (completed, failed with the error, interrupted), for the
    run browser and sweep summaries.
    """
    from trainlab.callbacks.interrupt import TrainingInterrupted
    from trainlab.tracking.resume import checkpoint_to_resume, nothing_left_to_train
    from trainlab.tracking.status import mark_finished, mark_running
    from trainlab.train import train  # heavy imports after Hydra has parsed the command line

    run_dir = Path(HydraConfig.get().runtime.output_dir)
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
        # trainlab stops on SIGTERM/SIGINT with a checkpoint (TrainingInterrupted); outside training,
        # Lightning turns SIGTERM into SIGTERMException, a SystemExit without a code, which would exit 0:
        # a stopped run must never look like a finished one
        message = str(err) if isinstance(err, TrainingInterrupted) else f"interrupted ({type(err).__name__})"
        mark_finished(run_dir, "interrupted", message)
        print(f"trainlab: {message}", file=sys.stderr)
        sys.exit(interrupted_exit_code(err))
    except Exception as err:
        mark_finished(run_dir, "failed", f"{type(err).__name__}: {err}")
        raise
    mark_finished(run_dir, "completed")
    return metrics.get("val/acc_best")


def _failed(run_dir: Path, err: TrainlabError) -> None:
    """A user error: recorded in status.json; one paragraph on stderr and exit 1 (in a sweep: the job
    is recorded as failed and the others run, see trainlab.tracking.sweep)."""
    from trainlab.tracking.status import mark_finished

    message = user_message(err)
    mark_finished(run_dir, "failed", message, at_start=bool(getattr(err, "at_start", False)))
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        log.error("job failed: %s", message)
        return None
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)
