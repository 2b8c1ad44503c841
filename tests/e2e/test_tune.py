"""`python -m trainlab.tune lr` through the real command: the suggestion lands near the lr the optimizer
table uses, the curve is written where asked, nothing is left in outputs/, bad requests stop with a reason."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO

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
