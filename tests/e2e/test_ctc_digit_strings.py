"""`python -m trainlab data=digit_strings model=crnn loss=ctc`: a sequence task end to end, offline.

The CI variant trains on fewer strings for fewer epochs than the shipped config (see the README for the
full run's numbers); its bar is set below what it reaches so that it fails only if reading breaks.
"""

from __future__ import annotations

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import run_cli

pytestmark = pytest.mark.slow

SEQUENCE = ["data=digit_strings", "model=crnn", "loss=ctc"]
# 8,000 strings x 6 epochs, ~65 s on one thread; measured test/acc 0.886, val/acc 0.818, val/cer 0.056
CI_VARIANT = ["data.num_strings=[8000,500,500]", "trainer.max_epochs=6"]
CI_BAR = 0.7


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("ctc")
    return run_cli([*SEQUENCE, *CI_VARIANT], cwd=root).check()


def test_crnn_with_ctc_learns_to_read_digit_strings(trained):
    metrics = trained.metrics
    assert metrics["test/acc"] >= CI_BAR, metrics
    assert 0 <= metrics["test/cer"] < 0.1 and metrics["val/cer"] < 0.1, metrics
    assert metrics["val/acc_best"] >= metrics["val/acc"] - 1e-9


def test_sequence_runs_log_cer_and_show_decoded_strings(trained):
    events = EventAccumulator(str(trained.run_dir / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    tags = events.Tags()
    assert {"val/acc", "val/cer", "train/cer", "test/cer"} <= set(tags["scalars"])
    assert "val/predictions" in tags["images"] and "val/confusion_matrix" not in tags["images"]
    assert (trained.run_dir / "predictions.png").is_file() and (trained.run_dir / "curves.png").is_file()
    assert not (trained.run_dir / "confusion_matrix.png").exists()


def test_eval_explains_it_reports_on_classification_runs_only(trained, tmp_path):
    done = run_cli([f"ckpt_path={trained.metrics['best_ckpt']}"], cwd=tmp_path, module="trainlab.eval")
    assert done.returncode == 1 and "is a sequence run" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["loss=ctc"], "loss=ctc is a loss for sequence tasks, but data=digits is a classification dataset"),
        (
            ["data=digit_strings", "model=crnn"],
            "loss=ce is a loss for classification tasks, but data=digit_strings",
        ),
        (
            ["data=digit_strings", "loss=ctc"],
            "model=tudui is a model for classification tasks, but data=digit_strings",
        ),
        (
            ["model=crnn"],
            "model=crnn is a model for sequence tasks, but data=digits is a classification dataset",
        ),
    ],
)
def test_task_mismatches_stop_before_training_and_say_what_fits(cli, overrides, message):
    done = cli(*overrides)
    assert done.returncode == 1, done.stderr
    assert message in done.stderr
    assert "sequence: data=digit_strings, model=crnn, loss=ctc" in done.stderr
    assert "Traceback" not in done.stderr and not (done.run_dir / "checkpoints").exists()
