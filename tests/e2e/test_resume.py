"""Exact resume: 4 epochs straight == 2 epochs, stop, resume to 4 (deterministic CPU), bit for bit."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.slow

# Stopping at epoch 2 of 4 must not change the schedule, so run-length keys are pinned to the 4-epoch run.
RECIPES = {
    "sgd_momentum_step": [
        "optim=sgd",
        "optim.lr=0.01",
        "optim.momentum=0.9",
        "scheduler=step",
        "scheduler.scheduler.step_size=1",
        "scheduler.scheduler.gamma=0.5",
    ],
    # Muon splits each group into its hidden matrices and an AdamW rest: 4 groups, two kinds of state
    "muon_cosine_two_groups": [
        "optim=muon",
        "scheduler=cosine",
        "scheduler.scheduler.T_max=4",
        r"optim.param_groups=[{name:features,params:'^net\.features\.',lr_scale:0.5}]",
    ],
    "onecycle_per_step": [
        "optim=sgd",
        "optim.lr=0.01",
        "optim.momentum=0.9",
        "scheduler=onecycle",
        "scheduler.scheduler.total_steps=92",
    ],  # 23 batches x 4 epochs
    "mid_epoch_two_workers": [
        "optim=adam",
        "scheduler=onecycle",
        "scheduler.scheduler.total_steps=92",
        "data.num_workers=2",
    ],
    "sgd_two_workers": [
        "optim=sgd",
        "optim.lr=0.01",
        "optim.lr=0.01",
        "optim.momentum=0.9",
        "scheduler=none",
        "data.num_workers=2",
    ],
}


def load(run_dir):
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")


def assert_identical(a, b, path="checkpoint"):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"{path} differs"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), f"{path}: keys {sorted(a)} vs {sorted(b)}"
        for key in a:
            assert_identical(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), f"{path}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_identical(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


# How the first run stops: after epoch 2, or (mid-epoch) at step 30 = batch 7 of epoch 2, checkpointing there.
STOP_AT_EPOCH = ["trainer.max_epochs=2"]
STOP_MID_EPOCH = [
    "trainer.max_epochs=4",
    "trainer.max_steps=30",
    "callbacks.last_checkpoint.every_n_train_steps=30",
    "callbacks.last_checkpoint.every_n_epochs=null",
]


@pytest.mark.parametrize("recipe", RECIPES)
def test_stop_and_resume_equals_the_straight_run(cli, tmp_path, recipe):
    common = ["trainer.deterministic=true", "test=false", *RECIPES[recipe]]
    stop = STOP_MID_EPOCH if recipe.startswith("mid_epoch") else STOP_AT_EPOCH
    straight = cli(*common, "trainer.max_epochs=4", run_dir=tmp_path / "straight").check()
    first = cli(*common, *stop, run_dir=tmp_path / "first").check()
    stopped = load(first.run_dir)
    assert stopped["global_step"] == (30 if stop is STOP_MID_EPOCH else 46)
    resumed = cli(
        *common,
        "trainer.max_epochs=4",
        f"ckpt_path={first.run_dir / 'checkpoints' / 'last.ckpt'}",
        run_dir=tmp_path / "resumed",
    ).check()
    a, b = load(straight.run_dir), load(resumed.run_dir)
    assert (a["epoch"], a["global_step"]) == (b["epoch"], b["global_step"]) == (3, 92)
    assert_identical(a["state_dict"], b["state_dict"], "state_dict")
    assert_identical(a["optimizer_states"], b["optimizer_states"], "optimizer_states")
    assert_identical(a["lr_schedulers"], b["lr_schedulers"], "lr_schedulers")
    for key in ("val/acc", "val/loss", "train/loss", "train/acc"):
        assert straight.metrics[key] == resumed.metrics[key], key
