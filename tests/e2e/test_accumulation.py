"""trainer.accumulate_grad_batches keeps data.batch_size the global batch of an optimizer step: the same
steps per epoch, and the same first update as one batch of that size on the same samples."""

from __future__ import annotations

import pytest
import torch

from conftest import run_cli

pytestmark = pytest.mark.slow

COMMON = [
    "data.batch_size=64", "optim=sgd", "optim.momentum=0", "scheduler=none", "logger=none", "test=false",
    "~callbacks.figures", "trainer.num_sanity_val_steps=0", "trainer.limit_val_batches=1",
    "trainer.max_epochs=1",
    # every optimizer step's weights kept (step1.ckpt, ...), beside the usual last.ckpt of the epoch
    "+callbacks.every_step={_target_:lightning.pytorch.callbacks.ModelCheckpoint,"
    "dirpath:${paths.output_dir}/steps,filename:'step{step}',auto_insert_metric_name:false,"
    "every_n_train_steps:1,save_top_k:-1}",
    "hydra.sweep.subdir=accumulate${trainer.accumulate_grad_batches}",
]  # fmt: skip


def test_micro_batches_make_the_same_updates_and_step_count_as_one_global_batch(tmp_path):
    done = run_cli(
        ["-m", "trainer.accumulate_grad_batches=1,4", *COMMON, f"hydra.sweep.dir={tmp_path}"], cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    log = (tmp_path / "accumulate4" / "train.log").read_text()
    assert "global batch 64 = 64 per device = 4 micro-batches of 16 (trainer.accumulate_grad_batches)" in log

    def load(k: int, name: str) -> dict:
        return torch.load(tmp_path / f"accumulate{k}" / name, weights_only=False)

    # four micro-batches of 16 make the same first SGD update (lr 0.05) as one batch of 64
    plain, accumulated = load(1, "steps/step1.ckpt"), load(4, "steps/step1.ckpt")
    assert plain["global_step"] == accumulated["global_step"] == 1
    for key, value in plain["state_dict"].items():
        torch.testing.assert_close(accumulated["state_dict"][key], value, rtol=1e-5, atol=1e-6, msg=key)
    # and an epoch has as many optimizer steps: ceil(1,439 training images / 64)
    assert (
        load(1, "checkpoints/last.ckpt")["global_step"]
        == load(4, "checkpoints/last.ckpt")["global_step"]
        == 23
    )
