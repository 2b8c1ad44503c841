"""Ways a run ends that are not the user's config: a dead rank, a dead loader worker, a signal. Each becomes
a named error with what to do next; an error before training marks the run as refused at start."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import lightning.pytorch as L

from trainlab.callbacks.interrupt import CheckpointOnSignal
from trainlab.compat import child_rank_processes
from trainlab.errors import DataError, TrainlabError, user_message
from trainlab.loggers.report import report_end
from trainlab.training.assemble import last_checkpoint_file

log = logging.getLogger(__name__)


@contextlib.contextmanager
def refused_at_start() -> Iterator[None]:
    """A user error before training marks the run as refused at start (`at_start`): the run browser
    hides such runs by default, and nothing was trained or logged."""
    try:
        yield
    except TrainlabError as err:
        err.at_start = True  # type: ignore[attr-defined]
        raise


@contextlib.contextmanager
def reported_end(trainer: L.Trainer, run_dir: Path) -> Iterator[None]:
    """A run that ends in an error is recorded so in its trackers (MLflow FAILED or KILLED with the
    error, W&B finished with exit code 1); reporting never hides the error itself."""
    try:
        yield
    except BaseException as err:
        interrupted = isinstance(err, KeyboardInterrupt | SystemExit)
        message = user_message(err) if isinstance(err, TrainlabError) else f"{type(err).__name__}: {err}"
        try:
            report_end(trainer, run_dir, "interrupted" if interrupted else "failed", message)
        except Exception as failure:  # a tracker out of reach must not replace the run's own error
            log.warning("could not record the run's end in its loggers: %s", failure)
        raise


@contextlib.contextmanager
def named_rank_deaths(trainer: L.Trainer) -> Iterator[None]:
    """A rank process that died (killed for memory, by the cluster, kill -9) leaves the others with a
    collective's connection error; name the rank, the last checkpoint and the resume command."""
    try:
        yield
    except Exception as err:
        died = dead_ranks(trainer)
        if not died:
            raise
        raise RankDied(died, last_checkpoint_file(trainer.callbacks, Path(trainer.default_root_dir))) from err


def dead_ranks(trainer: L.Trainer, wait_s: float = 1.0) -> list[tuple[int, int, int]]:
    """(rank, pid, exit code) of the child ranks that ended with an error (a killed one has a negative
    code, the signal); waits up to `wait_s` for a dying one to be reaped."""
    procs = child_rank_processes(trainer)
    deadline = time.monotonic() + wait_s
    while procs:
        died = [(rank, p.pid, p.returncode) for rank, p in enumerate(procs, 1) if p.poll() not in (None, 0)]
        if died or time.monotonic() > deadline:
            return died
        time.sleep(0.05)
    return []


def report_dead_ranks(run_dir: Path, last: Path, died: list[tuple[int, int, int]]) -> None:
    """From the launcher's watcher thread, just before the process ends: the run's status and the one
    paragraph, as a RankDied raised in the main thread would leave them."""
    from trainlab.records.status import mark_finished

    message = str(RankDied(died, last))
    mark_finished(run_dir, "failed", message)
    print(f"error: {message}", file=sys.stderr)


class RankDied(TrainlabError):
    def __init__(self, died: list[tuple[int, int, int]], last: Path) -> None:
        ranks = ", ".join(f"rank {rank} (pid {pid}, {how_it_ended(code)})" for rank, pid, code in died)
        resume = (
            f"The last checkpoint is {last}: the same command plus hydra.run.dir={last.parent.parent} "
            "ckpt_path=last resumes from it."
            if last.is_file()
            else "No checkpoint was written yet: run the command again."
        )
        super().__init__(
            f"{ranks} died, so the other ranks could not go on. {resume} A rank that dies without an error "
            "of its own was usually killed for lack of memory (see `dmesg`) or by the cluster's scheduler."
        )


def how_it_ended(code: int) -> str:
    """A Popen return code in words: negative ones are the signal that killed the process."""
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


@contextlib.contextmanager
def named_worker_deaths() -> Iterator[None]:
    """A DataLoader worker killed outright (out of memory, a crash in native decoding code) leaves
    only torch's 'worker exited unexpectedly'; say what that means and how to see the real error."""
    try:
        yield
    except RuntimeError as err:
        if "DataLoader worker" not in str(err):
            raise
        raise DataError(
            f"{str(err).splitlines()[0].rstrip('. ')}: a data loading process died without an error of its "
            "own, usually killed for lack of memory or by a crash in image decoding. Run with "
            "data.num_workers=0 to load in the main process and see the failing file, or lower "
            "data.num_workers / data.batch_size if memory is short."
        ) from err


def stop_if_signalled(trainer: L.Trainer) -> None:
    """A signal during the last epoch's validation lets fit end; the run still stops, before testing."""
    for callback in trainer.callbacks:
        if isinstance(callback, CheckpointOnSignal) and callback.received:
            raise callback.interrupted(trainer, callback.received, saved=callback.saved)
