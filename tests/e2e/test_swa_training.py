"""callbacks=swa through the real CLI: the average replaces the weights, BatchNorm statistics are
recomputed for it, the test scores it, and a run stopped inside the SWA phase resumes bit for bit."""

from __future__ import annotations

import json

import pytest
import torch
from test_resume import assert_identical

from conftest import run_cli
from faults import fault, fault_env

pytestmark = pytest.mark.slow

STEPS = 6  # batches per epoch; SWA from epoch 2 (0-based 1) of 4, then the BatchNorm epoch
SMALL_BN_NET = ["model=fastnet", "model.widths=[8,16,16]", "model.stem_width=8"]
COMMON = [
    *SMALL_BN_NET,
    "callbacks=swa",
    "callbacks.swa.swa_epoch_start=2",
    "callbacks.swa.swa_lrs=0.0005",
    "trainer.max_epochs=4",
    f"trainer.limit_train_batches={STEPS}",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.deterministic=true",
    "trainer.enable_progress_bar=false",
    "logger=none",
    "~callbacks.figures",
]


def load(run_dir):
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")


def swa_state(checkpoint):
    return next(v for k, v in checkpoint["callbacks"].items() if k.startswith("StochasticWeightAveraging"))


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("swa")
    return run_cli(COMMON, cwd=cwd, run_dir=cwd / "straight").check()


def test_the_average_replaces_the_weights_and_the_test_scores_it(straight):
    metrics = json.loads((straight.run_dir / "metrics.json").read_text())
    # 4 epochs and the forward-only epoch that recomputes BatchNorm statistics for the average
    assert metrics["epochs"] == 5 and metrics["tested_weights"] == "final (the SWA average)"
    assert 0 <= metrics["test/acc"] <= 1
    log = (straight.run_dir / "train.log").read_text()
    assert "Swapping scheduler `CosineAnnealingLR` for `SWALR`" in log
    swa = swa_state(load(straight.run_dir))
    assert swa["n_averaged"] == 3 and swa["latest_update_epoch"] == 3  # epochs 2, 3, 4 averaged


@pytest.mark.parametrize(
    "stop",
    [
        # the default per-epoch last.ckpt: the run dies after the first step of epoch 3 (inside SWA)
        [fault("CrashAtStep", step=2 * STEPS + 1)],
        # last.ckpt every 15 steps: step 15 is batch 3 of epoch 3; the run dies after step 16
        [
            "callbacks.last_checkpoint.every_n_train_steps=15",
            "callbacks.last_checkpoint.every_n_epochs=null",
            fault("CrashAtStep", step=16),
        ],
    ],
    ids=["epoch_boundary", "mid_epoch"],
)
def test_a_run_stopped_inside_the_swa_phase_resumes_bit_for_bit(straight, tmp_path, stop):
    first = run_cli([*COMMON, *stop], cwd=tmp_path, run_dir=tmp_path / "resumed", env=fault_env())
    assert first.returncode != 0
    assert load(first.run_dir)["global_step"] in (2 * STEPS, 15)
    run_cli([*COMMON, "ckpt_path=last"], cwd=tmp_path, run_dir=tmp_path / "resumed").check()
    a, b = load(straight.run_dir), load(tmp_path / "resumed")
    assert (a["epoch"], a["global_step"]) == (b["epoch"], b["global_step"])
    for key in ("state_dict", "optimizer_states", "lr_schedulers"):
        assert_identical(a[key], b[key], key)
    assert_identical(swa_state(a), swa_state(b), "the SWA callback's state")  # average, count, SWALR
    expected = json.loads((straight.run_dir / "metrics.json").read_text())
    got = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    for key in ("val/acc", "val/loss", "test/acc", "test/loss", "train/loss", "epochs"):
        assert got[key] == expected[key], key
