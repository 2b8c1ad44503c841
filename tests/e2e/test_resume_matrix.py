"""The resume matrix through the real CLI, over every conf/scheduler/*.yaml (a new one is covered with no
new test code): each stopped at an epoch boundary, mid-epoch and at an epoch's last batch, then resumed
with the same length, must end exactly like the uninterrupted run.

Each phase is one `-m` sweep over the schedulers (one process, one job per scheduler, job dirs named by
scheduler), so the matrix costs a few processes rather than one per cell. Runs are tiny: lenet on digits,
4 epochs of 4 batches, no figures.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_resume import assert_identical

from configs import options
from conftest import run_cli
from faults import fault, fault_env

pytestmark = pytest.mark.slow

SCHEDULERS = options("scheduler")
STEPS_PER_EPOCH, EPOCHS = 4, 4
TINY = [
    "model=lenet",
    f"trainer.limit_train_batches={STEPS_PER_EPOCH}",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.deterministic=true",
    "trainer.enable_progress_bar=false",
    "trainer.num_sanity_val_steps=0",
    "logger=none",
    "~callbacks.figures",
    "+callbacks.record_lr={_target_:faults.RecordLR,path:${paths.output_dir}/lr.jsonl}",
    "hydra.sweep.subdir=${hydra.runtime.choices.scheduler}",
]

# How the first run stops (extra overrides), and the step its last.ckpt holds.
STOPS = {
    # the default per-epoch last.ckpt; the run dies after the first step of epoch 3
    "epoch_boundary": ([fault("CrashAtStep", step=2 * STEPS_PER_EPOCH + 1)], 2 * STEPS_PER_EPOCH),
    # last.ckpt every 3 steps: step 6 is batch 2 of epoch 2; the run dies after step 7
    "mid_epoch": (
        [
            "callbacks.last_checkpoint.every_n_train_steps=3",
            "callbacks.last_checkpoint.every_n_epochs=null",
            fault("CrashAtStep", step=7),
        ],
        6,
    ),
    # last.ckpt every 4 steps: each lands on an epoch's last batch, so it is saved after that epoch's
    # validation; the run dies in the last epoch's validation
    "last_batch": (
        [
            f"callbacks.last_checkpoint.every_n_train_steps={STEPS_PER_EPOCH}",
            "callbacks.last_checkpoint.every_n_epochs=null",
            fault("CrashInValidation", epoch=EPOCHS - 1),
        ],
        (EPOCHS - 1) * STEPS_PER_EPOCH,
    ),
}


def sweep(sweep_dir: Path, *overrides: str, check: bool = True, schedulers: list[str] = SCHEDULERS):
    """One `-m` run over `schedulers`, each job in <sweep_dir>/<scheduler>."""
    done = run_cli(
        ["-m", f"hydra.sweep.dir={sweep_dir}", f"scheduler={','.join(schedulers)}", *TINY, *overrides],
        cwd=sweep_dir.parent,
        env=fault_env(),
    )
    if check:
        done.check()
    return done


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    root = tmp_path_factory.mktemp("matrix")
    sweep(root / "straight", f"trainer.max_epochs={EPOCHS}")
    stopped = {}
    for stop, (overrides, _) in STOPS.items():
        first = sweep(root / stop, f"trainer.max_epochs={EPOCHS}", *overrides, check=False)
        assert first.returncode != 0, "every job of the stopped sweep dies"
        stopped[stop] = {s: last_ckpt(root / stop / s) for s in SCHEDULERS}
        sweep(root / stop, f"trainer.max_epochs={EPOCHS}", "ckpt_path=last")
    return root, stopped


def last_ckpt(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")


def metrics(run_dir: Path) -> dict:
    values = json.loads((run_dir / "metrics.json").read_text())
    values.pop("wall_s")
    for key in ("best_ckpt", "last_ckpt"):  # the same file names, in each run's own dir
        assert values[key] is None or values[key].startswith(str(run_dir)), (key, values[key])
        values[key] = values[key] and Path(values[key]).name
    return values


@pytest.mark.parametrize("stop", STOPS)
@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_a_resumed_run_ends_exactly_like_the_uninterrupted_one(matrix, scheduler, stop):
    root, stopped = matrix
    assert stopped[stop][scheduler]["global_step"] == STOPS[stop][1]
    straight, resumed = root / "straight" / scheduler, root / stop / scheduler
    expected, got = metrics(straight), metrics(resumed)
    assert None not in (got["val/acc"], got["train/acc"], got["val/acc_best"], got["test/acc"]), got
    assert got == expected
    a, b = last_ckpt(straight), last_ckpt(resumed)
    assert (a["epoch"], a["global_step"]) == (b["epoch"], b["global_step"])
    # the history holds every epoch's train and val means: the resumed epoch's counts all its batches
    for key in (
        "state_dict",
        "optimizer_states",
        "lr_schedulers",
        "trainlab_val_acc_best",
        "trainlab_history",
    ):
        assert_identical(a[key], b[key], key)
    # and the run did resume there, rather than start afresh (which, deterministic, would end the same)
    log = (resumed / "train.log").read_text()
    assert (
        f"resuming from {resumed / 'checkpoints' / 'last.ckpt'} (" in log and f"step {STOPS[stop][1]})" in log
    )
    assert json.loads((resumed / "status.json").read_text())["status"] == "completed"
