"""`python -m trainlab.tune lr` through the real command: the suggestion lands near the lr the optimizer
table uses, the curve is written where asked, nothing is left in outputs/, bad requests stop with a reason."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, run_cli
from faults import fault_env

QUIET = ["logger=none", "test=false", "~callbacks.figures", "trainer.enable_progress_bar=false"]

pytestmark = pytest.mark.slow


def tune(cwd: Path, *words: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "trainlab.tune", *words], cwd=cwd, capture_output=True, timeout=600
    )
    # decoded by hand: text=True would turn a progress bar's carriage returns into newlines
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())


def shipped_lr(optim: str) -> float:
    return float(yaml.safe_load((REPO / "conf" / "optim" / f"{optim}.yaml").read_text())["lr"])


@pytest.mark.parametrize("optim", ["sgd", "adamw"])
def test_the_suggestion_is_within_an_order_of_magnitude_of_the_shipped_lr(tmp_path, optim):
    done = tune(tmp_path, "lr", f"optim={optim}", f"out={tmp_path / 'curve'}")
    assert done.returncode == 0, done.stderr[-3000:]
    suggested = next(line for line in done.stdout.splitlines() if line.startswith("suggested: optim.lr="))
    lr = float(suggested.split("=")[1].split()[0])
    assert shipped_lr(optim) / 10 <= lr <= shipped_lr(optim) * 10, (lr, done.stdout)
    rows = list(csv.DictReader((tmp_path / "curve" / "lr_find.csv").open()))
    assert 50 <= len(rows) <= 100 and float(rows[0]["lr"]) < 1e-7
    assert [float(r["lr"]) for r in rows] == sorted(float(r["lr"]) for r in rows)
    assert (tmp_path / "curve" / "lr_find.png").stat().st_size > 10_000
    assert list((tmp_path / "curve" / "tensorboard").glob("events.out.tfevents.*"))
    # the range test is not a run: nothing in outputs/, no bar redraws in a log
    assert not (tmp_path / "outputs").exists()
    assert "\r" not in done.stderr and "Finding best initial lr" not in done.stderr


def test_optimizers_without_a_meaningful_range_test_and_bad_options_are_refused(tmp_path):
    done = tune(tmp_path, "lr", "optim=lbfgs")
    assert done.returncode == 1 and "An LR range test means nothing for torch.optim.LBFGS" in done.stderr
    assert "Traceback" not in done.stderr
    done = tune(tmp_path, "lr", "min_lr=1", "max_lr=0.1")
    assert done.returncode == 2 and "need 0 < min_lr < max_lr" in done.stderr
    done = tune(tmp_path, "lr", "optim=nope")
    assert done.returncode != 0 and "optim" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "outputs").exists()


def test_the_batch_size_finder_stops_below_the_memory_boundary_and_its_batch_trains(tmp_path):
    """A network that runs out of memory above 100 images: binsearch finds 100, takes the 10% margin,
    and turns the micro-batch into the global batch of a run that accumulates 2 micro-batches."""
    limited = ["model._target_=faults.MemoryLimitedNet", "+model.max_batch=100"]
    env = {**os.environ, **fault_env()}
    done = subprocess.run(
        [sys.executable, "-m", "trainlab.tune", "batch_size", *limited, "trainer.accumulate_grad_batches=2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert "trained: 2, 4, 8, 16, 32, 64, 96, 100; out of memory: 101, 102, 104, 112, 128" in lines
    assert "largest micro-batch per device: 90 (101 ran out of memory; 10% margin taken off 100)" in lines
    assert any(line.startswith("suggested: data.batch_size=90 ") for line in lines), lines
    assert any("accumulate_grad_batches=2, 1 device(s)): data.batch_size=180 " in line for line in lines)
    assert not (tmp_path / "outputs").exists() and "Traceback" not in done.stderr
    # the global batch it printed trains: 2 micro-batches of 90 per optimizer step, none above 100
    sized = ["data.batch_size=180", "trainer.accumulate_grad_batches=2", "trainer.max_epochs=1"]
    run = run_cli(
        [*limited, *sized, *QUIET],
        cwd=tmp_path,
        run_dir=tmp_path / "run",
        env=fault_env(),
    ).check()
    assert json.loads((run.run_dir / "metrics.json").read_text())["epochs"] == 1


def test_bad_batch_size_finder_options_are_refused_before_any_trial(tmp_path):
    done = tune(tmp_path, "batch_size", "mode=halving")
    assert done.returncode == 2 and "mode=halving: one of binsearch, power is needed" in done.stderr
    done = tune(tmp_path, "batch_size", "margin=1.5")
    assert done.returncode == 2 and "margin=1.5" in done.stderr
    done = tune(tmp_path, "size")
    assert done.returncode == 2 and "lr (an LR range test) or batch_size" in done.stderr
