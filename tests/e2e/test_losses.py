"""Every shipped loss trains a real classifier through the CLI; users can add their own from outside."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import run_cli
from trainlab.core.build import shipped_options_for

pytestmark = pytest.mark.slow


MAE_UNDERFITS = pytest.mark.xfail(
    strict=True,
    reason=(
        "L1 between softmax probabilities and one-hot targets equals 2(1 - p_y)/K: its gradient p_y(1 - p_y) "
        "vanishes on confidently wrong samples, the known underfitting of MAE (Zhang & Sabuncu 2018). "
        "Measured: val/acc 0.866 after 10 epochs (train/acc 0.87); strict, so reaching 0.90 shows up here."
    ),
)
# ctc is a sequence loss: tests/e2e/test_ctc_digit_strings.py trains it
LOSSES = [
    pytest.param(n, marks=MAE_UNDERFITS) if n == "l1" else n
    for n in shipped_options_for("loss", "classification")
]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> Path:
    """`python -m trainlab -m data=digits loss=<every classification loss> trainer.max_epochs=10`: one
    sweep, so the 20 runs share one process start-up; figures and the test stage are not asserted here."""
    cwd = tmp_path_factory.mktemp("loss_zoo")
    names = ",".join(shipped_options_for("loss", "classification"))
    sweep = [f"hydra.sweep.dir={cwd / 'sweep'}", "hydra.sweep.subdir=${hydra.runtime.choices.loss}"]
    quiet = ["logger=none", "test=false", "~callbacks.figures", "trainer.enable_progress_bar=false"]
    run_cli(
        ["-m", "data=digits", f"loss={names}", "trainer.max_epochs=10", *quiet, *sweep],
        cwd=cwd,
        timeout=3000,
    )
    return cwd / "sweep"


@pytest.mark.timeout(3000)  # the first one waits for the whole sweep
@pytest.mark.parametrize("name", LOSSES)
def test_loss_trains_digits_to_90_percent(zoo, name):
    """`python -m trainlab data=digits loss=<name> trainer.max_epochs=10` reaches val/acc >= 0.90."""
    status = json.loads((zoo / name / "status.json").read_text())
    assert status["status"] == "completed", status
    metrics = json.loads((zoo / name / "metrics.json").read_text())
    assert metrics["val/acc"] >= 0.90 and metrics["epochs"] == 10, metrics


def test_reduction_none_trains_and_logs_the_per_sample_loss_histogram(cli):
    result = cli("loss=bce_logits", "loss.criterion.reduction=none", "trainer.max_epochs=2").check()
    assert result.metrics["val/acc"] >= 0.8
    events = EventAccumulator(str(result.run_dir / "tensorboard"))
    events.Reload()
    assert "train/loss_per_sample" in events.Tags()["histograms"]


def test_auto_class_weights_are_computed_and_logged(cli):
    result = cli("loss.criterion.weight=auto", "trainer.max_epochs=1").check()
    assert "loss.criterion.weight=auto ->" in (result.run_dir / "train.log").read_text()


FOCAL = '''
    """A user's loss, outside the trainlab package: focal loss (Lin et al. 2017)."""
    import torch
    import torch.nn.functional as F

    from trainlab.losses import LossAdapter


    class FocalLoss(LossAdapter):
        def __init__(self, gamma: float = 2.0, **kwargs):
            super().__init__(torch.nn.Identity(), **kwargs)
            self.gamma = gamma

        def forward(self, logits, labels):
            log_p = F.log_softmax(logits, dim=1).gather(1, labels[:, None]).squeeze(1)
            return (-(1 - log_p.exp()) ** self.gamma * log_p).mean()


    class SequenceOnlyLoss(FocalLoss):
        task = "sequence"
'''


@pytest.fixture
def user_project(tmp_path: Path) -> Path:
    """A user's own package and config dir: user_losses.py + conf/loss/{focal,seqloss}.yaml."""
    (tmp_path / "user_losses.py").write_text(textwrap.dedent(FOCAL))
    (tmp_path / "conf" / "loss").mkdir(parents=True)
    (tmp_path / "conf" / "loss" / "focal.yaml").write_text("_target_: user_losses.FocalLoss\ngamma: 2.0\n")
    (tmp_path / "conf" / "loss" / "seqloss.yaml").write_text("_target_: user_losses.SequenceOnlyLoss\n")
    return tmp_path


def test_a_users_own_loss_from_outside_the_package_trains(cli, user_project):
    result = cli(
        f"hydra.searchpath=[file://{user_project / 'conf'}]",
        "loss=focal",
        "trainer.max_epochs=3",
        env={"PYTHONPATH": str(user_project)},
    ).check()
    assert result.metrics["val/acc"] >= 0.9


def test_a_loss_for_another_task_fails_before_training(cli, user_project):
    result = cli(
        f"hydra.searchpath=[file://{user_project / 'conf'}]",
        "loss=seqloss",
        env={"PYTHONPATH": str(user_project)},
    )
    assert result.returncode == 1
    assert (
        "loss=seqloss is a loss for sequence tasks, but data=digits is a classification dataset"
        in result.stderr
    )
    assert not (result.run_dir / "checkpoints").exists()
