"""Several processes, one run: the same job, config and run dir on every rank.

Lightning's DDP starts ranks 1..N-1 by running the command line again with Hydra's run dir pinned. Under a
sweep (`-m`) that command line is the whole sweep: each child would start a sweep of its own, in a new
dir, with other hyperparameters. Here a child runs exactly the current job instead: the job's own
overrides (for Optuna the sampled values), as a single run, in the job's dir. Every rank then checks that
it composed the same config as the others before training, and logs the hyperparameters it trains with.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import lightning.pytorch as L
import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import Callback

from trainlab import compat
from trainlab.errors import ConfigError
from trainlab.records.catalog import flatten

log = logging.getLogger(__name__)

# Set by Lightning's launcher in the launching process; left behind they make the next job of a sweep
# believe an outside launcher (torchrun) started it, and it would wait for ranks that never come.
LAUNCH_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
# Hydra settings each rank's command sets itself: the job's dir, its own log file, no second .hydra/.
PINNED_HYDRA_KEYS = ("hydra.mode", "hydra.run.dir", "hydra.job.name", "hydra.output_subdir")
CHILD_EXIT_TIMEOUT_S = 60.0


def job_command(local_rank: int) -> tuple[list[str], str]:
    """The command (and working dir) that runs the current Hydra job as rank `local_rank`."""
    hydra = HydraConfig.get()
    command = [sys.executable, "-m", "trainlab"]
    for source in hydra.runtime.config_sources:
        if source.provider == "command-line":
            command += ["--config-dir", source.path]
        elif source.provider == "main" and source.schema == "file":
            command += ["--config-path", source.path]
    command += ["--config-name", hydra.job.config_name]
    command += [o for o in hydra.overrides.hydra if not _override_key(o).startswith(PINNED_HYDRA_KEYS)]
    command += list(hydra.overrides.task)
    command += [
        f"hydra.run.dir={_quoted(hydra.runtime.output_dir)}",
        f"hydra.job.name={hydra.job.name}_rank{local_rank}",
        "hydra.output_subdir=null",
    ]
    return command, hydra.runtime.cwd


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _quoted(value: str) -> str:
    """A Hydra override value that stays one string whatever it contains (spaces, '=', quotes).

    In Hydra's quoted strings a backslash escapes only a quote (or backslashes before one), so only
    those, and backslashes before the closing quote, are doubled.
    """
    escaped = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), value)
    return f"'{escaped}'"


def use_hydra_job_launcher(trainer: L.Trainer) -> None:
    """Start the other DDP ranks with `job_command` (see module doc) when Lightning would start them."""
    if HydraConfig.initialized():
        compat.start_child_ranks_with(trainer, job_command)


@contextlib.contextmanager
def distributed_job(trainer: L.Trainer) -> Iterator[None]:
    """Fit and test inside this: afterwards the process is ready for the next job of a sweep.

    The ranks this process started have finished (or are stopped, if the job failed), the process group
    is gone and the launcher's environment variables are as they were before the job.
    """
    saved = {key: os.environ.get(key) for key in LAUNCH_ENV}
    failed = True
    try:
        yield
        failed = False
    finally:
        _end_child_ranks(getattr(trainer.strategy, "launcher", None), stop=failed)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _end_child_ranks(launcher: Any, stop: bool) -> None:
    procs: Sequence[subprocess.Popen] = getattr(launcher, "procs", None) or []
    for proc in procs:
        if stop and proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=CHILD_EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.warning("rank process %d still runs after %.0f s; killing it", proc.pid, CHILD_EXIT_TIMEOUT_S)
            proc.kill()
            proc.wait()


def config_digest(config: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


class SameConfigOnRanks(Callback):
    """Before training, every rank logs its hyperparameters and checks all ranks composed one config.

    Ranks that trained with different hyperparameters would silently average unrelated gradients; this
    makes it an error that names the differing keys, raised on every rank.
    """

    def __init__(self, describe: Callable[[], tuple[Mapping[str, Any], Mapping[str, Any]]]) -> None:
        """`describe()` gives (resolved config, hparams) as the run will train, read when fitting starts
        (after trainlab has filled in what it derives, such as the schedule's lengths)."""
        self.describe = describe
        self.config: dict[str, Any] = {}
        self.hparams: dict[str, Any] = {}

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        config, hparams = self.describe()
        self.config, self.hparams = dict(config), dict(hparams)
        rank, world = trainer.global_rank, trainer.world_size
        digest = config_digest(self.config)
        hparams = json.dumps(self.hparams, sort_keys=True)
        if world == 1 or not torch.distributed.is_initialized():
            return  # one process: trainlab's run summary says what runs
        log.info("rank %d of %d: config %s, hparams %s", rank, world, digest, hparams)
        gathered: list[Any] = [None] * world
        torch.distributed.all_gather_object(gathered, (digest, self.hparams, dict(flatten(self.config))))
        differing = _differing_keys([flat for _, _, flat in gathered])
        if len({d for d, _, _ in gathered}) > 1:
            raise ConfigError(
                f"The {world} ranks of this run composed different configs (differing keys: "
                f"{', '.join(differing) or 'none of the plain values'}). Every rank must run the same "
                "command: launch the same overrides on every node, and do not set values from the "
                "environment that differ per process (e.g. ${oc.env:LOCAL_RANK})."
            )


def _differing_keys(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    keys = sorted(set().union(*configs))
    return [key for key in keys if len({json.dumps(c.get(key), default=str) for c in configs}) > 1]


def loss_scale_for_global_mean(trainer: L.Trainer, batch_size: int, reduction: str) -> torch.Tensor | float:
    """The factor that makes DDP's average of per-rank gradients the gradient of the global batch.

    DDP averages gradients over ranks. With a per-sample mean loss that equals the global batch's mean
    only when every rank holds the same number of samples, which the last batch of an epoch often does
    not; with a summed loss it is the global sum divided by the number of ranks. Scaling each rank's loss
    by its share of the global batch (times the rank count) trains exactly like one process would.
    """
    world = trainer.world_size
    if world == 1:
        return 1.0
    if reduction == "sum":
        return float(world)
    local = torch.tensor(float(batch_size), device=trainer.strategy.root_device)
    total = trainer.strategy.reduce(local.clone(), reduce_op="sum")
    return local * world / total
