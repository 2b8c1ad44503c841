"""trainer.accumulate_grad_batches keeps data.batch_size the global batch of an optimizer step: the same
steps per epoch, and the same first update as one batch of that size on the same samples."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import run_cli

pytestmark = pytest.mark.slow

COMMON = [
    "data.batch_size=64", "optim=sgd", "optim.momentum=0", "scheduler=none", "logger=none", "test=false",
    "~callbacks.figures", "trainer.num_sanity_val_steps=0", "trainer.limit_val_batches=1",
    "callbacks.last_checkpoint.every_n_train_steps=1", "callbacks.last_checkpoint.every_n_epochs=null",
    "hydra.sweep.subdir=accumulate${trainer.accumulate_grad_batches}",
]  # fmt: skip


def sweep(tmp_path: Path, name: str, *overrides: str) -> dict[int, dict]:
    done = run_cli(
        [
            "-m",
            "trainer.accumulate_grad_batches=1,4",
            *COMMON,
            *overrides,
            f"hydra.sweep.dir={tmp_path / name}",
        ],
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    log = (tmp_path / name / "accumulate4" / "train.log").read_text()
    assert "global batch 64 = 64 per device = 4 micro-batches of 16 (trainer.accumulate_grad_batches)" in log
    return {
        k: torch.load(tmp_path / name / f"accumulate{k}" / "checkpoints" / "last.ckpt", weights_only=False)
        for k in (1, 4)
    }


def test_four_micro_batches_of_16_make_the_same_first_update_as_one_batch_of_64(tmp_path):
    ckpts = sweep(tmp_path, "one_step", "trainer.max_steps=1")
    plain, accumulated = ckpts[1], ckpts[4]
    assert plain["global_step"] == accumulated["global_step"] == 1  # one SGD step (lr 0.05) taken in each
    for key, value in plain["state_dict"].items():
        torch.testing.assert_close(accumulated["state_dict"][key], value, rtol=1e-5, atol=1e-6, msg=key)


def test_an_epoch_has_as_many_optimizer_steps_with_accumulation_as_without(tmp_path):
    ckpts = sweep(tmp_path, "one_epoch", "trainer.max_epochs=1")
    assert ckpts[1]["global_step"] == ckpts[4]["global_step"] == 23  # ceil(1437 training images / 64)
