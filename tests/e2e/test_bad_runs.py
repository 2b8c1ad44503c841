"""Faults inside real CLI runs: NaN losses, broken or foreign checkpoints, writes the disk refuses."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from faults import fault, fault_env

pytestmark = pytest.mark.slow

SHORT = ["test=false", "trainer.max_epochs=2"]


def load(path: Path) -> dict:
    return torch.load(path, weights_only=True, map_location="cpu")


def status(run_dir: Path) -> dict:
    return json.loads((run_dir / "status.json").read_text())


def all_finite(checkpoint: dict) -> bool:
    return all(torch.isfinite(t).all() for t in checkpoint["state_dict"].values() if t.is_floating_point())


def test_a_nan_loss_stops_within_the_step_and_the_good_checkpoints_stay(cli, tmp_path):
    run_dir = tmp_path / "run"
    result = cli(*SHORT, fault("NanBatch", batches=[30]), run_dir=run_dir, env=fault_env())
    assert result.returncode == 1
    message = "train/loss is nan at epoch 2, step 30, batch 8 of the epoch"  # epochs and batches from 1
    assert message in result.stderr and "nonfinite_loss=skip" in result.stderr
    assert "Traceback" not in result.stderr
    assert status(run_dir)["status"] == "failed" and message in status(run_dir)["error"]
    files = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert files == ["epoch001-val_acc0.8994.ckpt", "last.ckpt"]  # epoch 2 was never saved nor ranked
    last = load(run_dir / "checkpoints" / "last.ckpt")
    assert (last["epoch"], last["global_step"]) == (0, 23) and all_finite(last)


def test_skip_policy_skips_nan_batches_counts_them_and_trains_on(cli, tmp_path):
    run_dir = tmp_path / "run"
    result = cli(
        *SHORT, "nonfinite_loss=skip", fault("NanBatch", batches=[5, 30]), run_dir=run_dir, env=fault_env()
    ).check()
    assert result.metrics["train/skipped_batches"] == 2
    assert result.metrics["val/acc"] > 0.85
    assert all_finite(load(run_dir / "checkpoints" / "last.ckpt"))
    log = (run_dir / "train.log").read_text()
    assert "batch skipped, 1 so far" in log and "batch skipped, 2 so far" in log


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory) -> Path:
    from conftest import run_cli

    cwd = tmp_path_factory.mktemp("once")
    quick = [
        "test=false",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=4",
        "trainer.limit_val_batches=2",
    ]
    return run_cli(quick, cwd=cwd).check().run_dir


@pytest.fixture
def one_epoch(trained_once, tmp_path) -> Path:
    """A copy of a finished 1-epoch run (last.ckpt and the best checkpoint) each test may break."""
    return Path(shutil.copytree(trained_once, tmp_path / "run"))


def test_ckpt_path_last_steps_back_from_a_corrupt_last_checkpoint_and_says_so(cli, one_epoch):
    ckpts = one_epoch / "checkpoints"
    (best,) = [p for p in ckpts.glob("epoch*.ckpt")]
    (ckpts / "last.ckpt").write_bytes((ckpts / "last.ckpt").read_bytes()[:5000])  # truncated
    resumed = cli("test=false", "trainer.max_epochs=2", "ckpt_path=last", run_dir=one_epoch).check()
    assert f"{ckpts / 'last.ckpt'} cannot be read" in resumed.stdout
    assert f"resuming from {best} instead (after epoch 1, step 4)" in resumed.stdout
    assert resumed.metrics["epochs"] == 2


def test_ckpt_path_last_with_no_readable_checkpoint_names_each_and_trains_nothing(cli, one_epoch):
    ckpts = one_epoch / "checkpoints"
    (best,) = [p for p in ckpts.glob("epoch*.ckpt")]
    (ckpts / "last.ckpt").write_bytes(b"")
    best.write_bytes(b"not a checkpoint at all")
    before = sorted(p.name for p in ckpts.iterdir())
    result = cli("test=false", "trainer.max_epochs=2", "ckpt_path=last", run_dir=one_epoch)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{ckpts / 'last.ckpt'} is empty" in result.stderr and f"{best} cannot be read" in result.stderr
    assert "start afresh without ckpt_path" in result.stderr
    assert sorted(p.name for p in ckpts.iterdir()) == before


def test_a_checkpoint_of_another_model_names_keys_shapes_and_config(cli, one_epoch, tmp_path):
    ckpt = one_epoch / "checkpoints" / "last.ckpt"
    result = cli("model=lenet", f"ckpt_path={ckpt}", run_dir=tmp_path / "other")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"Checkpoint {ckpt} does not fit this run" in result.stderr
    assert "net.conv1.weight" in result.stderr  # lenet's weights, missing from the checkpoint
    assert "model._target_: trainlab.models.tudui.TutorialCNN -> trainlab.models.lenet.LeNet" in result.stderr
    assert not (tmp_path / "other" / "checkpoints").exists()


def test_a_disk_that_refuses_the_checkpoint_stops_the_run_naming_the_file(tmp_path):
    """ulimit -f 1 MB: the kernel refuses the 1.7 MB checkpoint (EFBIG), as a full disk would."""

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))

    run_dir = tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "trainlab",
        *SHORT,
        f"hydra.run.dir={run_dir}",
        "trainer.enable_progress_bar=false",
    ]
    done = subprocess.run(
        args,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limit_file_size,
        env=os.environ,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert f"Could not write checkpoint {run_dir / 'checkpoints'}" in done.stderr
    assert "ulimit -f" in done.stderr and "Traceback" not in done.stderr
    assert status(run_dir)["status"] == "failed"
    assert list((run_dir / "checkpoints").iterdir()) == []  # no truncated file, no partial left behind
