"""Names and ids the trackers get: a job's experiment, run name and tags, and trackers.json."""

from __future__ import annotations

from pathlib import Path

import pytest

import trainlab.loggers.job
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
    ("build", "extra"),
    [
        (lambda: trainlab.loggers.mlflow.MLFlowLogger("sqlite:///x.db"), "mlflow"),
        (lambda: trainlab.loggers.wandb.WandbLogger("."), "wandb"),
    ],
)
def test_a_tracker_without_its_package_names_the_extra_to_install(monkeypatch, build, extra):
    monkeypatch.setattr(trainlab.loggers.job.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=rf"pip install 'trainlab\[{extra}\]'"):
        build()


def test_the_run_browser_reads_only_an_existing_store_and_names_a_bad_one(tmp_path, capsys):
    import trainlab.runs

    missing = f"sqlite:///{tmp_path / 'nope' / 'mlflow.db'}"
    assert trainlab.runs.main(["--mlflow", missing]) == 1
    assert f"--mlflow {missing}: {tmp_path / 'nope' / 'mlflow.db'} does not exist" in capsys.readouterr().err
    assert not (tmp_path / "nope").exists()  # listing never creates a store
    (tmp_path / "notes.db").write_text("not a database")
    assert trainlab.runs.main(["--mlflow", f"sqlite:///{tmp_path / 'notes.db'}"]) == 1
    err = capsys.readouterr().err
    assert "cannot be opened as an MLflow store" in err and "Traceback" not in err
    assert trainlab.runs.main(["--mlflow", "ftp://example.invalid/x"]) == 1
    err = capsys.readouterr().err
    assert (
        "--mlflow ftp://example.invalid/x: the MLflow store cannot be reached" in err
        and "Traceback" not in err
    )
    assert trainlab.runs.main(["--experiment", "x"]) == 1
    assert "--experiment selects an MLflow experiment" in capsys.readouterr().err


def test_wandb_online_without_an_api_key_is_named_before_training(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.delenv("NETRC", raising=False)
    logger = trainlab.loggers.wandb.WandbLogger(str(tmp_path), offline=False)
    with pytest.raises(
        ConfigError, match=r"logger.wandb.offline=false .* no W&B API key is set: run `wandb login`"
    ):
        logger.check()
    trainlab.loggers.wandb.WandbLogger(str(tmp_path), offline=True).check()  # offline needs none
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    logger.check()
