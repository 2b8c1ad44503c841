"""experiment=cifar10_fast through the real CLI on a CIFAR-10-style JPEG folder: EMA, flip TTA, bf16."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import run_cli
from faults import fault, fault_env
from realformat import write_cifar10_folder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fast")
    root = write_cifar10_folder(tmp / "cifar10-train", per_class=40)
    overrides = [
        "experiment=cifar10_fast", "data=cifar10_jpeg", f"data.root={root}", "data.batch_size=60",
        # 6 steps an epoch: a shorter memory for the average than the recipe's 0.98 over 880 steps
        "trainer.max_epochs=8", "callbacks.ema.decay=0.8", "callbacks.ema.update_starting_at_step=2",
    ]  # fmt: skip
    return run_cli(overrides, cwd=tmp).check(), tmp, overrides


def test_the_fast_recipe_learns_and_scores_with_the_averaged_weights(fast_run):
    result, _, _ = fast_run
    metrics = result.metrics
    assert metrics["epochs"] == 8 and metrics["val/acc_best"] >= 0.7  # 10 learnable classes, 40 val images
    assert metrics["test/acc"] is None  # cifar10_jpeg has no test split
    checkpoint = torch.load(metrics["best_ckpt"], weights_only=False)
    # the EMA callback stores the averaged weights as the state_dict and the raw ones beside them
    assert "current_model_state" in checkpoint
    averaged, raw = checkpoint["state_dict"], checkpoint["current_model_state"]
    assert averaged.keys() == raw.keys()
    assert any(not torch.equal(averaged[k], raw[k]) for k in averaged if averaged[k].is_floating_point())
    config = checkpoint["trainlab_config"]
    assert (config["tta"], config["perf"]["channels_last"], config["trainer"]["precision"]) == (
        "flip",
        True,
        "bf16-mixed",
    )


def test_eval_of_the_best_checkpoint_reproduces_its_validation_accuracy(fast_run):
    result, tmp, _ = fast_run
    out = tmp / "eval"
    done = run_cli(
        [f"ckpt_path={result.metrics['best_ckpt']}", "split=val", f"out={out}"],
        cwd=tmp,
        module="trainlab.eval",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "metrics.json").read_text())
    # eval rebuilds the net, loads the averaged weights and scores with flip TTA, as validation did
    # (fp32 here, bf16 autocast in the run: a prediction or two may flip)
    assert report["val/acc"] == pytest.approx(result.metrics["val/acc_best"], abs=0.051)


def test_an_interrupted_fast_run_resumes_with_its_average_to_the_same_result(fast_run):
    result, tmp, overrides = fast_run
    run_dir = tmp / "interrupted"
    stopped = run_cli([*overrides, fault("SignalAtStep", step=20)], cwd=tmp, run_dir=run_dir, env=fault_env())
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    resumed = run_cli([*overrides, "ckpt_path=last"], cwd=tmp, run_dir=run_dir).check()
    assert "Found current_model_state in the checkpoint" in (run_dir / "train.log").read_text()
    # the raw weights and their average both continue: the run ends where the straight one did
    assert resumed.metrics["epochs"] == 8
    assert resumed.metrics["val/acc_best"] == pytest.approx(result.metrics["val/acc_best"], abs=0.051)
