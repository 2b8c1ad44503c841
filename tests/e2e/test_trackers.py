"""MLflow and W&B runs of one trainlab run: a crash recorded as FAILED with its error, a resume that
continues the same tracker runs, a store out of reach named before training.

The sweep's view (one MLflow experiment per sweep, read over a live `mlflow server`) is tested with the
sweep of test_experiment_tracking.py.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from conftest import run_cli
from faults import fault, fault_env
from wandbfiles import history, run_info

pytestmark = pytest.mark.slow

SHORT = ["logger=[mlflow,wandb]", "trainer.max_epochs=2", "trainer.limit_train_batches=6"]


def test_a_crash_is_failed_in_both_trackers_and_the_resume_continues_their_runs(tmp_path):
    from mlflow.tracking import MlflowClient

    run_dir = tmp_path / "run"
    crashed = run_cli([*SHORT, fault("CrashAtStep", step=8)], cwd=tmp_path, run_dir=run_dir, env=fault_env())
    assert crashed.returncode != 0 and "fault: crashed after step 8" in crashed.stderr
    first = json.loads((run_dir / "trackers.json").read_text())
    client = MlflowClient(f"sqlite:///{tmp_path}/outputs/mlflow/mlflow.db")
    run = client.get_run(first["mlflow"]["run_id"])
    assert run.info.status == "FAILED"
    assert "RuntimeError: fault: crashed after step 8" in run.data.tags["trainlab.error"]
    assert run.data.params["trainer.max_epochs"] == "2" and run.data.params["optim"] == "adamw"

    # resumed from another directory: the run continues in the store it was recorded in
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    resumed = run_cli(
        [*SHORT, "trainer.max_epochs=3", "ckpt_path=last"], cwd=elsewhere, run_dir=run_dir
    ).check()
    assert "mlflow: continuing run " + first["mlflow"]["run_id"] in resumed.stdout + resumed.stderr
    assert json.loads((run_dir / "trackers.json").read_text())["mlflow"] == first["mlflow"]
    other = MlflowClient(f"sqlite:///{elsewhere}/outputs/mlflow/mlflow.db")
    assert not [r for e in other.search_experiments() for r in other.search_runs([e.experiment_id])]
    metrics = resumed.metrics
    experiment = client.get_experiment_by_name("trainlab")
    assert [r.info.run_id for r in client.search_runs([experiment.experiment_id])] == [run.info.run_id]
    run = client.get_run(run.info.run_id)
    assert run.info.status == "FINISHED"
    val_acc = client.get_metric_history(run.info.run_id, "val/acc")
    assert [m.step for m in val_acc] == [5, 11, 17]  # epoch 1 before the crash, 2 and 3 after the resume
    assert val_acc[-1].value == pytest.approx(metrics["val/acc"], abs=1e-6)
    assert run.data.metrics["val/acc_best"] == pytest.approx(metrics["val/acc_best"], abs=1e-6)
    assert run.data.metrics["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-6)
    assert run.data.metrics["epochs"] == metrics["epochs"] == 3  # the resume's results are the latest
    # MLflow never changes a parameter: the resume's longer run is a tag
    assert run.data.params["trainer.max_epochs"] == "2"
    assert run.data.tags["trainlab.resumed_with.trainer.max_epochs"] == "3"
    assert "ckpt_path=last" in run.data.tags["trainlab.overrides"]

    # W&B offline cannot add to a run: the resume is a run of its own whose steps go on
    offline = sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(offline) == 2 and run_info(offline[0]).run_id == first["wandb"]["run_id"]
    second = json.loads((run_dir / "trackers.json").read_text())["wandb"]["run_id"]
    assert run_info(offline[1]).run_id == second != first["wandb"]["run_id"]
    assert "wandb: offline, this resume is a new W&B run" in resumed.stdout + resumed.stderr
    before, after = ([row for row in history(path) if "val/acc" in row] for path in offline)
    assert [row["trainer/global_step"] for row in before + after] == [5, 11, 17]
    assert after[-1]["val/acc"] == pytest.approx(metrics["val/acc"], abs=1e-6)
    assert run_info(offline[-1]).display_name.startswith("logger=[mlflow,wandb],trainer.max_epochs=2")
    files = offline[-1].parent / "files"
    assert json.loads((files / "metrics.json").read_text()) == metrics
    assert (files / "figures" / "curves.png").is_file()


def test_an_mlflow_store_out_of_reach_stops_the_run_before_training(tmp_path):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run_cli(["logger=mlflow", f"logger.mlflow.tracking_uri=http://127.0.0.1:{port}"], cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1
    assert (
        f"logger.mlflow.tracking_uri=http://127.0.0.1:{port}: the MLflow store cannot be reached" in errors[0]
    )
    assert "drop the override: the default is the local store" in errors[0]
    assert not (result.run_dir / "checkpoints").exists() and not (result.run_dir / "trackers.json").exists()
    assert not Path(tmp_path / "outputs").exists()
