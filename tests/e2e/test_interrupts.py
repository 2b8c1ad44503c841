"""Signals and kill -9 against real CLI runs: work since the last step survives, a resume is exact."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_resume import assert_identical

from faults import AS_FROM_A_TERMINAL, fault, fault_env

pytestmark = pytest.mark.slow

# 2 epochs x 23 batches of digits, deterministic, so a resumed run can be compared bit for bit
COMMON = [
    "trainer.deterministic=true",
    "test=false",
    "trainer.max_epochs=2",
    "optim=sgd",
    "optim.momentum=0.9",
]
STEPS = 46


def last_ckpt(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")


def status(run_dir: Path) -> dict:
    return json.loads((run_dir / "status.json").read_text())


def logged_steps(run_dir: Path, tag: str = "train/loss_step") -> list[int]:
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    return [event.step for event in events.Scalars(tag)]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    from conftest import run_cli

    cwd = tmp_path_factory.mktemp("straight")
    return run_cli(COMMON, cwd=cwd).check()


def assert_same_final_state(resumed_dir: Path, straight_dir: Path) -> None:
    a, b = last_ckpt(straight_dir), last_ckpt(resumed_dir)
    assert (a["epoch"], a["global_step"]) == (b["epoch"], b["global_step"]) == (1, STEPS)
    assert_identical(a["state_dict"], b["state_dict"], "state_dict")
    assert_identical(a["optimizer_states"], b["optimizer_states"], "optimizer_states")
    assert_identical(a["lr_schedulers"], b["lr_schedulers"], "lr_schedulers")


def test_sigterm_at_a_random_step_saves_it_and_the_resume_is_bit_exact(cli, tmp_path, straight):
    step = int(os.environ.get("TRAINLAB_TEST_STEP", 0)) or random.Random(time.time_ns()).randrange(
        1, STEPS - 1
    )
    run_dir = tmp_path / "run"
    stopped = cli(*COMMON, fault("SignalAtStep", step=step), run_dir=run_dir, env=fault_env())
    assert stopped.returncode == 143, f"step {step}: exit {stopped.returncode}\n{stopped.stderr[-3000:]}"
    # epochs counted from 1: the run stops before the next step, in the epoch that holds it
    assert f"stopped by SIGTERM at epoch {(step + 1) // 23 + 1}, step {step + 1}" in stopped.stderr
    assert "ckpt_path=last" in stopped.stderr
    assert status(run_dir)["status"] == "interrupted"
    assert last_ckpt(run_dir)["global_step"] == step + 1, (
        f"the step in flight ({step}) finished and was saved"
    )
    if step >= 9:  # train/loss_step goes to TensorBoard at steps 9, 19, ...: the events were flushed
        assert max(logged_steps(run_dir)) == (step + 1) // 10 * 10 - 1
    resumed = cli(*COMMON, "ckpt_path=last", run_dir=run_dir).check()
    assert status(run_dir)["status"] == "completed"
    assert_same_final_state(run_dir, straight.run_dir)
    assert resumed.metrics["val/acc"] == straight.metrics["val/acc"], f"signalled at step {step}"


def test_ctrl_c_from_outside_stops_after_the_step_and_resumes_exactly(tmp_path, straight):
    run_dir = tmp_path / "run"
    started = tmp_path / "training"
    args = [sys.executable, "-c", AS_FROM_A_TERMINAL, *COMMON, f"hydra.run.dir={run_dir}"]
    args += ["trainer.enable_progress_bar=false", fault("MarkTraining", path=started, step=5)]
    proc = subprocess.Popen(
        args, cwd=tmp_path, env={**os.environ, **fault_env()}, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-3000:]
    assert "stopped by SIGINT" in stderr and "Traceback" not in stderr
    saved = last_ckpt(run_dir)["global_step"]
    assert 5 <= saved < STEPS
    subprocess.run([*args[:-1], "ckpt_path=last"], cwd=tmp_path, check=True, capture_output=True)
    assert_same_final_state(run_dir, straight.run_dir)


def test_kill_9_mid_run_leaves_a_checkpoint_that_resumes(cli, tmp_path):
    """A checkpoint every step, so the kill often lands inside a write; the run resumes from what is left."""
    run_dir = tmp_path / "run"
    every_step = [
        *COMMON,
        "callbacks.last_checkpoint.every_n_train_steps=1",
        "callbacks.last_checkpoint.every_n_epochs=null",
        f"hydra.run.dir={run_dir}",
        "trainer.enable_progress_bar=false",
    ]
    proc = subprocess.Popen([sys.executable, "-m", "trainlab", *every_step], cwd=tmp_path)
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not ckpt.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(random.uniform(0.0, 1.0))
    proc.kill()
    proc.wait()
    assert last_ckpt(run_dir)["global_step"] >= 1
    assert status(run_dir)["status"] == "running"  # nobody could write more; the run browser says killed
    resumed = cli(*COMMON, "ckpt_path=last", run_dir=run_dir).check()
    assert resumed.metrics["epochs"] == 2
    assert not list((run_dir / "checkpoints").glob(".*")), "partial files are cleaned up on the next start"


def test_sigterm_on_an_epochs_last_batch_saves_the_validated_epoch_and_resumes_exactly(
    cli, tmp_path, straight
):
    run_dir = tmp_path / "run"
    last_batch = STEPS // 2 - 1  # step 22, the first epoch's last batch
    stopped = cli(*COMMON, fault("SignalAtStep", step=last_batch), run_dir=run_dir, env=fault_env())
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    # saved once the epoch had been validated: the resume starts epoch 2 and loses nothing of epoch 1
    assert f"stopped by SIGTERM at epoch 2, step {STEPS // 2}" in stopped.stderr
    saved = last_ckpt(run_dir)
    assert saved["global_step"] == STEPS // 2 and saved["trainlab_val_acc_best"] is not None
    cli(*COMMON, "ckpt_path=last", run_dir=run_dir).check()
    assert_same_final_state(run_dir, straight.run_dir)
    got, expected = (json.loads((d / "metrics.json").read_text()) for d in (run_dir, straight.run_dir))
    for key in ("train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best", "epochs"):
        assert got[key] == expected[key] is not None, key
