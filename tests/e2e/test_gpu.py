"""GPU runs, skipped on machines without one: trainer=gpu (bf16 where the GPU has it) and trainer=ddp."""

from __future__ import annotations

import json

import pytest
import torch

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_one_gpu_trains_in_bf16_where_supported(cli):
    done = cli("trainer=gpu", "trainer.max_epochs=2").check()
    config = (done.run_dir / "config.yaml").read_text()
    expected = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    assert f"precision: {expected}" in config
    assert done.metrics["val/acc"] > 0.8


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_ddp_on_two_gpus_writes_one_run_and_matches_one_gpu(cli, tmp_path):
    exact = ["trainer.precision=32-true", "trainer.max_epochs=2", "trainer.deterministic=true"]
    one = cli("trainer=gpu", *exact, run_dir=tmp_path / "one").check()
    two = cli("trainer=ddp", "trainer.devices=2", *exact, run_dir=tmp_path / "two").check()
    assert sorted(p.name for p in two.run_dir.glob("*.log")) == ["train.log", "train_rank1.log"]
    assert json.loads((two.run_dir / "status.json").read_text())["status"] == "completed"
    # NCCL sums gradients in another order than one GPU: equal accuracy, not equal bits
    assert abs(one.metrics["val/acc"] - two.metrics["val/acc"]) <= 2 / 179
