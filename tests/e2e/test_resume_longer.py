"""Resuming a run for longer, over every conf/scheduler/*.yaml in both units (interval: epoch and step):
from the end of a finished 2-epoch run and from a mid-epoch checkpoint, resumed to 4 epochs, every step
after the resume trains with the lr of a fresh 4-epoch run, and config.yaml records the new lengths.

One `-m` sweep over the schedulers per phase (see test_resume_matrix.py for the set-up).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from test_resume_matrix import SCHEDULERS, STEPS_PER_EPOCH
from test_resume_matrix import sweep as matrix_sweep

from faults import fault

pytestmark = pytest.mark.slow

# ReduceLROnPlateau watches val/loss, which exists once per epoch: it has no per-step form
PER_INTERVAL = {
    "epoch": SCHEDULERS,
    "step": [s for s in SCHEDULERS if s != "plateau"],
}
# first runs of 2 epochs: finished, or dead after step 7 with last.ckpt at step 6 (mid-epoch 2)
FIRST = {
    "finished": ([], 2 * STEPS_PER_EPOCH),
    "mid_epoch": (
        [
            "callbacks.last_checkpoint.every_n_train_steps=3",
            "callbacks.last_checkpoint.every_n_epochs=null",
            fault("CrashAtStep", step=7),
        ],
        6,
    ),
}


def sweep(sweep_dir: Path, interval: str, *overrides: str, check: bool = True):
    schedulers = PER_INTERVAL[interval]
    return matrix_sweep(
        sweep_dir, f"scheduler.interval={interval}", *overrides, check=check, schedulers=schedulers
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("longer")
    for interval in PER_INTERVAL:
        sweep(root / f"straight-{interval}", interval, "trainer.max_epochs=4", "test=false")
        for first, (overrides, _) in FIRST.items():
            run_dir = root / f"{first}-{interval}"
            done = sweep(run_dir, interval, "trainer.max_epochs=2", *overrides, check=False)
            assert (done.returncode == 0) == (first == "finished"), done.stderr[-3000:]
            sweep(run_dir, interval, "trainer.max_epochs=4", "ckpt_path=last", "test=false")
    return root


def lrs(run_dir: Path) -> dict[int, dict[str, float]]:
    """The lr of every step; a resumed run's file holds its first run's steps too, the later ones win."""
    lines = (run_dir / "lr.jsonl").read_text().splitlines()
    return {entry["step"]: entry["lr"] for entry in map(json.loads, lines)}


def scheduler_config(run_dir: Path) -> dict:
    return yaml.safe_load((run_dir / "config.yaml").read_text())["scheduler"]


CELLS = [(s, interval, first) for interval in PER_INTERVAL for s in PER_INTERVAL[interval] for first in FIRST]


@pytest.mark.parametrize(("scheduler", "interval", "first"), CELLS)
def test_a_longer_resume_trains_every_later_step_with_the_lr_of_a_fresh_longer_run(
    runs, scheduler, interval, first
):
    straight = runs / f"straight-{interval}" / scheduler
    resumed = runs / f"{first}-{interval}" / scheduler
    resumed_at = FIRST[first][1]
    expected, got = lrs(straight), lrs(resumed)
    assert sorted(got) == sorted(expected) == list(range(4 * STEPS_PER_EPOCH))
    for step in range(resumed_at, 4 * STEPS_PER_EPOCH):
        assert got[step] == expected[step], (
            f"step {step}: {got[step]} after the resume, {expected[step]} fresh"
        )
    assert scheduler_config(resumed) == scheduler_config(straight)  # the new lengths, as they ran
    metrics = json.loads((resumed / "metrics.json").read_text())
    assert metrics["epochs"] == 4 and None not in (metrics["val/acc"], metrics["train/acc"])
    # train.log holds both runs: the schedule is rebuilt exactly when the derived lengths changed
    log = (resumed / "train.log").read_text()
    derived = [
        re.findall(r"(\w+)=(\[[^]]*\]|\S+) \(", line) for line in re.findall(r"schedule: (.*); the run", log)
    ]
    changed = len(derived) == 2 and derived[0] != derived[1]
    assert ("resumed with a different schedule" in log) == changed, derived
