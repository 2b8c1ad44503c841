"""callbacks=early_stopping through the CLI: a run whose monitored metric stalls stops, one that improves
does not, and what happened is in metrics.json, the last line and the run browser."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import run_cli

pytestmark = pytest.mark.slow

QUIET = ["logger=none", "test=false", "~callbacks.figures"]


def test_a_stalled_metric_stops_the_run_and_an_improving_one_does_not(tmp_path):
    # min_delta=100: no epoch can improve val/loss by that much, so the run stalls by definition;
    # min_delta=0 with digits' first epochs: val/loss falls every epoch
    sweep = [
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "hydra.sweep.subdir=delta${callbacks.early_stopping.min_delta}",
    ]
    done = run_cli(
        [
            "-m", "callbacks=early_stopping", "callbacks.early_stopping.patience=1",
            "callbacks.early_stopping.min_delta=100,0", "trainer.max_epochs=3", *QUIET, *sweep,
        ],
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    stalled = json.loads((tmp_path / "sweep" / "delta100" / "metrics.json").read_text())
    improving = json.loads((tmp_path / "sweep" / "delta0" / "metrics.json").read_text())
    assert stalled["stopped_early"] is True and stalled["epochs"] == 2
    assert "val/loss" in stalled["stopping_reason"]
    assert improving["stopped_early"] is False and improving["epochs"] == 3
    assert improving["stopping_reason"] is None
    assert done.stdout.count("| stopped early after epoch 2: ") == 1
    listing = subprocess.run(
        [sys.executable, "-m", "trainlab.runs", str(tmp_path / "sweep")], capture_output=True, text=True
    )
    assert listing.returncode == 0, listing.stderr
    assert "2 (stopped early)" in listing.stdout and "3 (stopped early)" not in listing.stdout


def test_a_misspelled_monitor_stops_before_training_with_the_nearest_name(tmp_path):
    done = run_cli(
        ["callbacks=early_stopping", "callbacks.early_stopping.monitor=val/los", *QUIET], cwd=tmp_path
    )
    assert done.returncode != 0
    assert "callbacks.early_stopping.monitor=val/los is never logged" in done.stderr
    assert "Did you mean callbacks.early_stopping.monitor=val/loss?" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()
