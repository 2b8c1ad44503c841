"""Lightning and Hydra internals trainlab relies on, in one place, each with a test (tests/test_compat.py).

Neither has a public API for these; if an upgrade changes them, the tests here fail first and name
the function, instead of a resume quietly going wrong or an error reaching the user as a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the checkpoint readers serve `python -m trainlab.ckpt`, which does not load Lightning
    import lightning.pytorch as L
    from lightning.pytorch.callbacks import ModelCheckpoint


def on_last_batch_of_epoch(trainer: L.Trainer) -> bool:
    """Whether the training batch in flight is the epoch's last (valid from on_train_batch_start to
    on_train_batch_end): the loader is exhausted, or trainer.limit_train_batches is reached."""
    progress = trainer.fit_loop.epoch_loop.batch_progress
    return bool(progress.is_last_batch) or progress.current.ready >= trainer.num_training_batches


def epochs_trained(trainer: L.Trainer) -> int:
    """Epochs whose training part has finished (a resumed run: those before the checkpoint)."""
    return int(trainer.fit_loop.epoch_progress.current.processed)


def checkpoint_epochs_trained(checkpoint: Mapping[str, Any]) -> int | None:
    """Epochs whose training part had finished when `checkpoint` was written; None if it does not say."""
    try:
        return int(checkpoint["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
    except (KeyError, TypeError, ValueError):
        return None


def checkpoint_batches_into_epoch(checkpoint: Mapping[str, Any]) -> int:
    """Training batches of an unfinished epoch that `checkpoint` holds (0 at an epoch's end)."""
    try:
        progress = checkpoint["loops"]["fit_loop"]["epoch_loop.batch_progress"]
        # saved in on_train_batch_end: the batch is processed, not yet counted as completed
        return 0 if progress.get("is_last_batch") else int(progress["current"]["processed"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return 0


def checkpoint_position(checkpoint: Mapping[str, Any]) -> str:
    """Where in training `checkpoint` was written, epochs counted from 1: 'after epoch 2, step 46' or
    'in epoch 3 after 7 batches, step 53'."""
    epochs, step = checkpoint_epochs_trained(checkpoint), checkpoint.get("global_step")
    batches = checkpoint_batches_into_epoch(checkpoint)
    if epochs is None:
        return f"step {step}"
    if batches and epochs is not None:
        return f"in epoch {epochs + 1} after {batches} batches, step {step}"
    return f"after epoch {epochs}, step {step}"


def logging_this_step(trainer: L.Trainer) -> bool:
    """Whether Lightning hands this step's logged values to the loggers (every trainer.log_every_n_steps)."""
    return bool(trainer._logger_connector.should_update_logs)


def save_model_checkpoint_now(callback: ModelCheckpoint, trainer: L.Trainer) -> None:
    """Let a ModelCheckpoint save what it saves at a trigger (top-k and last), with its bookkeeping."""
    if callback._should_skip_saving_checkpoint(trainer):  # fast_dev_run, not fitting, saved already
        return
    candidates = callback._monitor_candidates(trainer)
    callback._save_topk_checkpoint(trainer, candidates)
    callback._save_last_checkpoint(trainer, candidates)


def step_trigger_due(callback: ModelCheckpoint, trainer: L.Trainer) -> bool:
    """Whether `every_n_train_steps` makes the ModelCheckpoint save after this step."""
    every = callback._every_n_train_steps
    return every >= 1 and trainer.global_step % every == 0


def load_pending_loader_state(trainer: L.Trainer) -> None:
    """Hand a resumed run's train-loader position (saved in the checkpoint) to the loader.

    Lightning applies it only when it builds the train loader after restoring the checkpoint; anything
    that builds the loader earlier (e.g. `trainer.estimated_stepping_batches` during
    configure_optimizers) would skip it. The loader starts lazily, so handing it over at train start is
    still in time.
    """
    fit_loop = trainer.fit_loop
    if getattr(fit_loop, "_combined_loader_states_to_load", None) and hasattr(
        fit_loop, "_load_combined_loader_states"
    ):
        fit_loop._load_combined_loader_states()


def resumed_epoch_in_progress(trainer: L.Trainer) -> bool:
    """Whether the fit loop still counts as restarting: true through an epoch resumed mid-way, at whose
    end Lightning does not step ReduceLROnPlateau (it assumes the monitored value was lost)."""
    return bool(trainer.fit_loop.restarting)


def report_hydra_errors(explain: Callable[[BaseException], str | None]) -> None:
    """Route errors Hydra meets before the task function runs (a bad override, an unknown option, a run
    dir it cannot create) through `explain`: its text is printed as one `error:` paragraph and the
    process exits 1. Errors it returns None for keep Hydra's own report.

    Hydra prints these itself, in `hydra._internal.utils.run_and_report`, which it looks up by name
    when it parses the command line, composes the config and runs the job.
    """
    import hydra._internal.utils as hydra_utils

    original = getattr(hydra_utils.run_and_report, "__wrapped__", hydra_utils.run_and_report)

    def run_and_report(func: Callable[[], Any]) -> Any:
        try:
            return func()
        except Exception as err:
            message = explain(err)
            if message is None:
                caught = err
                return original(lambda: _reraise(caught))
            print(f"error: {message}", file=sys.stderr)
            sys.exit(1)

    run_and_report.__wrapped__ = original  # type: ignore[attr-defined]
    hydra_utils.run_and_report = run_and_report


def _reraise(err: BaseException) -> Any:
    raise err


def child_rank_processes(trainer: L.Trainer) -> list[Any]:
    """The processes of ranks 1..N-1 that this process started (Lightning's script launcher keeps them
    in `procs`, rank r at index r - 1); empty when it started none."""
    launcher = getattr(trainer.strategy, "launcher", None)
    return list(getattr(launcher, "procs", None) or [])


def on_rank_death(report: Callable[[list[tuple[int, int, int]]], None]) -> None:
    """When a child rank dies, call `report` with (rank, pid, exit code) of the dead ones, then end this
    process with exit code 1 (the other child ranks killed first).

    Lightning's launcher watches its child ranks from a thread and, when one dies, kills the others and
    this process with SIGKILL (a rank may hang in a collective, where no signal handler runs), so nothing
    would say which rank died. The thread is not blocked, so it can report first.
    """
    import os

    from lightning.fabric.strategies.launchers import subprocess_script

    observer = subprocess_script._ChildProcessObserver
    original = getattr(observer._terminate_all, "__wrapped__", observer._terminate_all)

    def _terminate_all(self: Any) -> None:
        died = [
            (rank, p.pid, p.returncode) for rank, p in enumerate(self._child_processes, 1) if p.returncode
        ]
        for proc in self._child_processes:
            if proc.poll() is None:
                proc.kill()
        try:
            report(died)
        finally:
            sys.stderr.flush()
            os._exit(1)

    _terminate_all.__wrapped__ = original  # type: ignore[attr-defined]
    observer._terminate_all = _terminate_all


def start_child_ranks_with(trainer: L.Trainer, command: Callable[..., tuple[list[str], str]]) -> None:
    """Have the trainer's DDP launcher start ranks 1..N-1 with `command(local_rank=...)` -> (argv, cwd)
    instead of Lightning's Hydra-aware rerun of the whole command line; a no-op for other launchers.

    Lightning's `_SubprocessScriptLauncher` builds the child command with the module-level
    `_hydra_subprocess_cmd` whenever Hydra is initialized; it is swapped only while children start.
    """
    from lightning.pytorch.strategies.launchers import subprocess_script

    stock_launcher = subprocess_script._SubprocessScriptLauncher

    class JobCommandLauncher(stock_launcher):
        def _call_children_scripts(self) -> None:
            stock = subprocess_script._hydra_subprocess_cmd
            subprocess_script._hydra_subprocess_cmd = command
            try:
                super()._call_children_scripts()
            finally:
                subprocess_script._hydra_subprocess_cmd = stock

    strategy = trainer.strategy
    launcher = getattr(strategy, "_launcher", None)
    if type(launcher) is stock_launcher:
        strategy._launcher = JobCommandLauncher(
            launcher.cluster_environment, launcher.num_processes, launcher.num_nodes
        )


def tensorboard_file_writer(writer: Any) -> Any:
    """The `FileWriter` behind a torch `SummaryWriter`: the only way to add the pre-built hparams
    summaries (torch.utils.tensorboard.summary.hparams) without the extra run dir `add_hparams` makes."""
    return writer._get_file_writer()


class GatedTQDMProgressBar:
    """Mixin for Lightning's `TQDMProgressBar` that asks `should_redraw(current, total)` whether to redraw,
    through the bar's private `_should_update` (its only per-step redraw decision)."""

    def should_redraw(self, current: int, total: int) -> bool:
        raise NotImplementedError

    def _should_update(self, current: int, total: int) -> bool:
        return self.should_redraw(current, total)


def continue_tracker_run(logger: Any, run_id: str) -> None:
    """Point a not yet started MLflow or W&B logger of Lightning at an existing run (both create their
    run lazily, on first use; neither takes a run id after construction)."""
    if hasattr(logger, "_wandb_init"):  # WandbLogger: wandb.init(id=..., resume="allow") continues it
        logger._wandb_init.update(id=run_id, resume="allow")
        logger._id = run_id
    else:  # MLFlowLogger: a set _run_id makes `experiment` fetch that run instead of creating one
        logger._run_id = run_id


def drop_unset_wandb_arguments(logger: Any) -> None:
    """Lightning passes `anonymous=None` to wandb.init, which wandb 0.2x warns about on every run."""
    if getattr(logger, "_wandb_init", {}).get("anonymous", True) is None:
        del logger._wandb_init["anonymous"]


def point_mlflow_logger_at(logger: Any, tracking_uri: str) -> None:
    """Move a not yet started MLFlowLogger of Lightning to another tracking store (it takes the URI only
    when constructed, and keeps a client for it)."""
    from mlflow.tracking import MlflowClient

    logger._tracking_uri = tracking_uri
    logger._mlflow_client = MlflowClient(tracking_uri)
