"""Names and ids the trackers get: a job's experiment, run name and tags, and trackers.json."""

from __future__ import annotations

from pathlib import Path

import pytest

import trainlab.loggers.mlflow
import trainlab.loggers.wandb
from trainlab.errors import ConfigError
from trainlab.loggers.job import Job, read_tracked_runs, record_tracked_run


def test_a_single_run_is_in_the_trainlab_experiment_named_by_its_overrides():
    job = Job(run_dir=Path("outputs/2026-11-30/10-00-00"), overrides=("optim=adam", "hydra.run.dir=x"))
    assert job.experiment == "trainlab" and job.run_name == "optim=adam"
    assert job.run_tags() == {
        "trainlab.run_dir": "outputs/2026-11-30/10-00-00",
        "trainlab.overrides": "optim=adam hydra.run.dir=x",
    }
    assert Job(run_dir=Path("outputs/2026-11-30/10-00-00")).run_name == "10-00-00"


def test_a_sweep_job_is_in_its_sweeps_experiment_and_an_optuna_job_carries_its_trial():
    job = Job(
        Path("sweep/3"), ("optim=sgd", "seed=2"), sweep_dir="outputs/multirun/d/t", number=3, optuna=True
    )
    assert job.experiment == "outputs/multirun/d/t" and job.run_name == "optim=sgd,seed=2"
    tags = job.run_tags()
    assert tags["trainlab.sweep_dir"] == "outputs/multirun/d/t" and tags["trainlab.job"] == "3"
    assert tags["optuna.trial"] == "3"
    assert "optuna.trial" not in Job(Path("s/0"), (), sweep_dir="s", number=0).run_tags()


def test_tracker_run_ids_are_kept_per_backend_and_an_unreadable_file_is_none(tmp_path):
    assert read_tracked_runs(tmp_path) == {}
    record_tracked_run(tmp_path, "mlflow", {"run_id": "a"})
    record_tracked_run(tmp_path, "wandb", {"run_id": "b"})
    assert read_tracked_runs(tmp_path) == {"mlflow": {"run_id": "a"}, "wandb": {"run_id": "b"}}
    (tmp_path / "trackers.json").write_text("{not json")
    assert read_tracked_runs(tmp_path) == {}


@pytest.mark.parametrize(
    ("module", "build", "extra"),
    [
        (trainlab.loggers.mlflow, lambda: trainlab.loggers.mlflow.MLFlowLogger("sqlite:///x.db"), "mlflow"),
        (trainlab.loggers.wandb, lambda: trainlab.loggers.wandb.WandbLogger("."), "wandb"),
    ],
)
def test_a_tracker_without_its_package_names_the_extra_to_install(monkeypatch, module, build, extra):
    monkeypatch.setattr(module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=rf"pip install 'trainlab\[{extra}\]'"):
        build()
