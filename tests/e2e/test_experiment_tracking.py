"""Experiment tracking end to end: sweeps and their summary, TensorBoard over HTTP, Optuna, runs/eval/predict.

One 4-job sweep on digits is trained once for this module; the tests read it through every door a user
has: summary.csv, a live TensorBoard server, `python -m trainlab.runs` and `python -m trainlab.eval`.
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import trainlab.eval
import trainlab.predict
import trainlab.runs
from conftest import run_cli
from faults import AS_FROM_A_TERMINAL
from mlflowserver import by_key, mlflow_server
from realformat import write_image_folder
from tbserver import tensorboard_server
from trainlab.checkpoints.restore import load_run_checkpoint, rebuild_module
from trainlab.core.build import build
from trainlab.records.files import mlflow_ui_command, tensorboard_command
from wandbfiles import history, run_info

pytestmark = pytest.mark.slow

FAST = ["trainer.max_epochs=2", "trainer.limit_train_batches=6"]
JOBS = [("sgd", "ce"), ("sgd", "bce_logits"), ("adam", "ce"), ("adam", "bce_logits")]  # Hydra's order


def module_cli(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def summary_rows(sweep: Path) -> list[dict[str, str]]:
    with (sweep / "summary.csv").open() as handle:
        return list(csv.DictReader(handle))


def job_metrics(job_dir: Path) -> dict[str, Any]:
    return json.loads((job_dir / "metrics.json").read_text())


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python -m trainlab -m optim=sgd,adam loss=ce,bce_logits logger=many` on digits, short: TensorBoard
    in each job dir, MLflow in <root>/outputs/mlflow."""
    root = tmp_path_factory.mktemp("sweep")
    sweep_dir = root / "sweep"
    result = run_cli(
        ["-m", "optim=sgd,adam", "loss=ce,bce_logits", "logger=many", *FAST, f"hydra.sweep.dir={sweep_dir}"],
        cwd=root,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"sweep summary: {sweep_dir / 'summary.md'} (4 jobs, 0 not completed)" in result.stdout
    # a view per logger the jobs used: TensorBoard over the sweep dir, MLflow's UI on its local store
    last = next(line for line in result.stdout.splitlines() if "sweep summary:" in line)
    assert f"| view: {tensorboard_command(sweep_dir)}" in last
    store = f"sqlite:///{root / 'outputs' / 'mlflow' / 'mlflow.db'}"
    assert f"| view: {mlflow_ui_command(store)} (experiment {sweep_dir})" in last
    return sweep_dir


def test_sweep_summary_has_a_row_per_job_that_agrees_with_each_runs_metrics(sweep):
    rows = summary_rows(sweep)
    assert len(rows) == 4 and sorted(row["job"] for row in rows) == ["0", "1", "2", "3"]
    bests = [float(row["val/acc_best"]) for row in rows]
    assert bests == sorted(bests, reverse=True)  # best first
    for row in rows:
        job_dir = Path(row["run_dir"])
        assert job_dir == sweep / row["job"]
        metrics = job_metrics(job_dir)
        assert row["status"] == "completed" and row["error"] == ""
        assert float(row["val/acc_best"]) == metrics["val/acc_best"]
        assert float(row["val/acc"]) == metrics["val/acc"] and float(row["test/acc"]) == metrics["test/acc"]
        assert int(row["epochs"]) == metrics["epochs"] == 2 and float(row["wall_s"]) == metrics["wall_s"]
        overrides = yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text())
        assert row["overrides"] == " ".join(overrides)
        optim, loss = JOBS[int(row["job"])]
        assert f"optim={optim}" in overrides and f"loss={loss}" in overrides
    table = (sweep / "summary.md").read_text()
    assert table.count("\n| ") == 5 and f"tensorboard --logdir {sweep}" in table


def test_every_sweep_job_writes_its_plots_and_status(sweep):
    for job in range(4):
        job_dir = sweep / str(job)
        for name in ("curves.png", "confusion_matrix.png", "predictions.png", "test_confusion_matrix.png"):
            assert (job_dir / name).stat().st_size > 1000, f"{name} missing in job {job}"
        status = json.loads((job_dir / "status.json").read_text())
        assert status["status"] == "completed" and status["error"] is None


def test_tensorboard_serves_every_runs_curves_hparams_images_and_text(sweep):
    runs = {f"{job}/tensorboard": job_metrics(sweep / str(job)) for job in range(4)}

    def loaded(tb) -> bool:  # test/acc and the test confusion matrix are each run's last writes
        tags, images = tb.scalar_tags(), tb.image_tags()
        return all(
            "test/acc" in tags.get(r, {}) and "test/confusion_matrix" in images.get(r, {}) for r in runs
        )

    with tensorboard_server(sweep) as tb:
        tb.wait_until(loaded)
        assert set(tb.runs()) == set(runs)  # one logdir: every job's curves overlay
        for run, metrics in runs.items():
            for tag in ("train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best", "lr/default"):
                assert tag in tb.scalar_tags()[run], f"{tag} missing for {run}"
            val_acc = tb.scalars(run, "val/acc")
            assert [step for _, step, _ in val_acc] == sorted(step for _, step, _ in val_acc)
            assert len(val_acc) == 2 and val_acc[-1][2] == pytest.approx(metrics["val/acc"], abs=1e-6)
            assert tb.scalars(run, "test/acc")[-1][2] == pytest.approx(metrics["test/acc"], abs=1e-6)
            assert len(tb.scalars(run, "train/loss")) == 2
            assert {"val/confusion_matrix", "val/predictions", "test/confusion_matrix"} <= set(
                tb.image_tags()[run]
            )
            assert {"config/text_summary", "provenance/text_summary"} <= set(tb.text_tags()[run])

        experiment = tb.hparams_experiment()
        names = {info["name"] for info in experiment["hparamInfos"]}
        assert {"data", "model", "loss", "optim", "scheduler", "optim.lr", "data.batch_size"} <= names
        assert {m["name"]["tag"] for m in experiment["metricInfos"]} == {
            "val/acc_best",
            "val/loss",
            "test/acc",
        }

        sessions = {group["name"]: group for group in tb.hparams_sessions()}
        assert set(sessions) == set(runs)
        for run, metrics in runs.items():
            group = sessions[run]
            optim, loss = JOBS[int(run.split("/")[0])]
            assert group["hparams"]["optim"] == optim and group["hparams"]["loss"] == loss
            assert group["hparams"]["data"] == "digits" and group["hparams"]["model"] == "tudui"
            values = {m["name"]["tag"]: m["value"] for m in group["metricValues"]}
            assert values["val/acc_best"] == pytest.approx(metrics["val/acc_best"], abs=1e-6)
            assert values["val/loss"] == pytest.approx(metrics["val/loss"], abs=1e-6)
            assert values["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-6)

        config_text = tb.text("0/tensorboard", "config/text_summary")[0]["text"]
        assert "torch.optim.SGD" in config_text and "CrossEntropyLoss" in config_text
        provenance_text = tb.text("0/tensorboard", "provenance/text_summary")[0]["text"]
        assert "commit" in provenance_text and "torch" in provenance_text


def test_mlflow_holds_the_sweep_as_one_experiment_with_each_jobs_run(sweep):
    """Read back over a real `mlflow server`'s REST API, as the MLflow UI reads it."""
    with mlflow_server(sweep.parent / "outputs" / "mlflow" / "mlflow.db") as api:
        experiment = api.experiment(str(sweep))  # named after the sweep
        runs = {
            by_key(run["data"]["tags"])["trainlab.job"]: run for run in api.runs(experiment["experiment_id"])
        }
        assert sorted(runs) == ["0", "1", "2", "3"]
        for job, (optim, loss) in enumerate(JOBS):
            run, metrics = runs[str(job)], job_metrics(sweep / str(job))
            assert run["info"]["status"] == "FINISHED"
            assert run["info"]["run_name"].startswith(
                f"optim={optim},loss={loss},logger=many,{','.join(FAST)}"
            )
            params, tags = by_key(run["data"]["params"]), by_key(run["data"]["tags"])
            assert not [key for key, value in params.items() if value.startswith(str(sweep / str(job)))]
            assert params["optim"] == optim and params["loss"] == loss and params["data"] == "digits"
            assert params["trainer.max_epochs"] == "2" and params["optim.lr"] == str(
                yaml.safe_load((sweep / str(job) / "config.yaml").read_text())["optim"]["lr"]
            )
            assert tags["trainlab.run_dir"] == str(sweep / str(job)) and tags["trainlab.sweep_dir"] == str(
                sweep
            )
            assert f"optim={optim}" in tags["trainlab.overrides"].split()
            values = by_key(run["data"]["metrics"])
            for key in ("val/acc_best", "val/acc", "val/loss", "test/acc"):
                assert values[key] == pytest.approx(metrics[key], abs=1e-6), key
            history = api.metric_history(run["info"]["run_id"], "val/acc")
            assert len(history) == 2 and history[-1]["value"] == pytest.approx(metrics["val/acc"], abs=1e-6)
            artifacts = set(api.artifacts(run["info"]["run_id"]))
            assert {"config.yaml", "provenance.json", "metrics.json", "figures/curves.png"} <= artifacts
            assert any(path.startswith("figures/val/confusion_matrix/") for path in artifacts)
            assert any(path.startswith("figures/val/predictions/") for path in artifacts)
            assert f"checkpoints/{Path(metrics['best_ckpt']).name}" in artifacts
            record = json.loads((sweep / str(job) / "trackers.json").read_text())["mlflow"]
            assert record["run_id"] == run["info"]["run_id"]


def test_runs_lists_the_sweep_from_the_mlflow_store(sweep, capsys):
    store = f"sqlite:///{sweep.parent / 'outputs' / 'mlflow' / 'mlflow.db'}"
    assert trainlab.runs.main(["--mlflow", store, "--experiment", str(sweep)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == f"4 runs in 1 experiment of {store}"
    for job in range(4):
        row = next(line for line in lines if f" {sweep / str(job)} " in line)
        metrics = job_metrics(sweep / str(job))
        assert (
            "completed" in row
            and f"{metrics['val/acc_best']:.4f}" in row
            and f"{metrics['test/acc']:.4f}" in row
        )
    assert trainlab.runs.main(["--mlflow", store, "--experiment", "nope"]) == 1
    assert f"--experiment nope: {store} has no such experiment" in capsys.readouterr().err


def test_a_failing_job_is_recorded_and_the_others_still_run(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_cli(
        [
            "-m",
            "optim=sgd,adam,adamw,sparse_adam",  # sparse_adam cannot train a dense CNN: a user error
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=3",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert (
        len(error_lines) == 1
        and "1 of 4 sweep jobs failed, the others ran. job 3 (optim=sparse_adam" in error_lines[0]
    )
    rows = summary_rows(sweep_dir)
    assert len(rows) == 4
    completed = [row for row in rows if row["status"] == "completed"]
    failed = [row for row in rows if row["status"] == "failed"]
    assert len(completed) == 3 and len(failed) == 1 and rows[-1] is failed[0]
    assert failed[0]["job"] == "3" and "needs sparse gradients" in failed[0]["error"]
    assert failed[0]["val/acc_best"] == "" and not (sweep_dir / "3" / "checkpoints").exists()
    for row in completed:
        assert float(row["val/acc_best"]) == job_metrics(Path(row["run_dir"]))["val/acc_best"]


def test_optuna_search_on_digits_reports_the_best_parameters_and_fills_the_summary(tmp_path):
    sweep_dir = tmp_path / "optuna"
    result = run_cli(
        [
            "hparams_search=optuna",
            "hydra.sweeper.n_trials=3",
            "hydra.sweeper.sampler.n_startup_trials=2",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=5",
            "logger=[mlflow,wandb]",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Best parameters" in result.stdout + result.stderr
    assert "\x1b" not in result.stdout + result.stderr  # no colour codes when not in a terminal
    study = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert set(study["best_params"]) == {"optim", "optim.lr", "optim.weight_decay", "loss"}
    rows = summary_rows(sweep_dir)
    assert len(rows) == 3 and all(row["status"] == "completed" for row in rows)
    assert study["best_value"] == pytest.approx(float(rows[0]["val/acc_best"]))
    assert f"optim={study['best_params']['optim']}" in rows[0]["overrides"].split()
    assert f"loss={study['best_params']['loss']}" in rows[0]["overrides"].split()
    for row in rows:
        lr = next(o for o in row["overrides"].split() if o.startswith("optim.lr="))
        assert 1e-4 <= float(lr.split("=")[1]) <= 0.1
        config = yaml.safe_load((Path(row["run_dir"]) / "config.yaml").read_text())
        assert config["optim"]["lr"] == float(lr.split("=")[1])  # the trial's value reached the run

    from mlflow.tracking import MlflowClient  # each trial is a run of the search's experiment, numbered

    client = MlflowClient(f"sqlite:///{tmp_path / 'outputs' / 'mlflow' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name(str(sweep_dir)).experiment_id])
    trials = {int(run.data.tags["optuna.trial"]): run for run in runs}
    assert sorted(trials) == [0, 1, 2]
    for row in rows:
        run = trials[int(row["job"])]
        assert run.data.metrics["val/acc_best"] == pytest.approx(float(row["val/acc_best"]), abs=1e-4)
        assert run.data.params["optim.lr"] == str(
            yaml.safe_load((Path(row["run_dir"]) / "config.yaml").read_text())["optim"]["lr"]
        )
        # W&B: jobs in one process each get their own run (wandb.init would hand the next job the last one)
        (offline,) = Path(row["run_dir"]).glob("wandb/offline-run-*/run-*.wandb")
        tracked = json.loads((Path(row["run_dir"]) / "trackers.json").read_text())["wandb"]["run_id"]
        assert run_info(offline).run_group == str(sweep_dir) and run_info(offline).run_id == tracked
        wandb_best = max(r["val/acc_best"] for r in history(offline) if "val/acc_best" in r)
        assert wandb_best == pytest.approx(float(row["val/acc_best"]), abs=1e-4)
    ids = {json.loads((Path(r["run_dir"]) / "trackers.json").read_text())["wandb"]["run_id"] for r in rows}
    assert len(ids) == 3


def test_runs_lists_compares_and_finds_the_best(sweep):
    listing = module_cli("trainlab.runs", str(sweep), cwd=sweep)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    for job, (optim, loss) in enumerate(JOBS):
        line = next(line for line in lines if line.startswith(f"{job} "))
        metrics = job_metrics(sweep / str(job))
        assert "completed" in line and f"{metrics['val/acc_best']:.4f}" in line
        assert f"optim={optim}" in line and f"loss={loss}" in line
    assert "4 runs, 1 sweeps" in listing.stdout

    best = module_cli("trainlab.runs", "--best", str(sweep), cwd=sweep)
    first = summary_rows(sweep)[0]
    assert best.returncode == 0 and f"run_dir: {first['run_dir']}" in best.stdout
    checkpoint = Path(next(line for line in best.stdout.splitlines() if line.startswith("checkpoint: "))[12:])
    assert checkpoint.is_file() and checkpoint.parent == Path(first["run_dir"]) / "checkpoints"

    compared = module_cli("trainlab.runs", "--compare", str(sweep / "0"), str(sweep / "3"), cwd=sweep)
    assert compared.returncode == 0, compared.stderr
    differing = {line.split()[0]: line.split()[1:] for line in compared.stdout.split("\n\n")[1].splitlines()}
    assert differing["optim._target_"] == ["torch.optim.SGD", "torch.optim.Adam"]
    assert "paths.output_dir" not in differing and "data.batch_size" not in differing
    best_line = next(line for line in compared.stdout.splitlines() if line.startswith("val/acc_best"))
    assert f"{job_metrics(sweep / '3')['val/acc_best']:.4g}" in best_line
    # digits has 10 classes: top-5 accuracy in metrics.json, the sweep table and the comparison
    top5 = job_metrics(sweep / "3")
    assert top5["val/acc"] <= top5["val/acc_top5"] <= 1 and top5["test/acc"] <= top5["test/acc_top5"] <= 1
    assert summary_rows(sweep)[0]["val/acc_top5"] not in ("", None)
    assert any(line.startswith("val/acc_top5 ") for line in compared.stdout.splitlines())


def test_eval_of_a_runs_best_checkpoint_reproduces_its_test_and_val_scores(sweep):
    job_dir = sweep / "2"
    metrics = job_metrics(job_dir)
    checkpoint = metrics["best_ckpt"]
    tested = module_cli("trainlab.eval", f"ckpt_path={checkpoint}", cwd=sweep)
    assert tested.returncode == 0, tested.stderr[-3000:]
    out = job_dir / f"eval-test-{Path(checkpoint).stem}"
    report = json.loads((out / "metrics.json").read_text())
    assert report["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-6)  # same model, same test split
    assert report["test/loss"] == pytest.approx(metrics["test/loss"], abs=1e-5)
    per_class = list(csv.DictReader((out / "per_class.csv").open()))
    assert [row["class"] for row in per_class] == [str(d) for d in range(10)]
    assert sum(int(row["support"]) for row in per_class) == report["samples"]
    confusion = list(csv.DictReader((out / "confusion_matrix.csv").open()))
    hits = sum(int(row[row["true"]]) for row in confusion)
    assert hits / report["samples"] == pytest.approx(report["test/acc"], abs=1e-6)  # a float32 metric
    assert (out / "confusion_matrix.png").stat().st_size > 1000
    assert "macro avg" in tested.stdout

    validated = module_cli(
        "trainlab.eval",
        f"ckpt_path={checkpoint}",
        "split=val",
        "data.batch_size=17",
        f"out={sweep / 'ev'}",
        cwd=sweep,
    )
    assert validated.returncode == 0, validated.stderr[-3000:]
    # the best checkpoint is the epoch that set val/acc_best
    assert json.loads((sweep / "ev" / "metrics.json").read_text())["val/acc"] == pytest.approx(
        metrics["val/acc_best"], abs=1e-6
    )


def test_eval_names_bad_input(sweep, tmp_path, capsys):
    """In-process (the CLI path itself is exercised above): each error is one line naming the culprit."""
    checkpoint = job_metrics(sweep / "0")["best_ckpt"]
    for args, message in (
        ([f"ckpt_path={tmp_path / 'none.ckpt'}"], "does not exist"),
        ([f"ckpt_path={checkpoint}", "data.nope=1"], "data.nope is not a key of the run config"),
        ([f"ckpt_path={checkpoint}", "split=train"], "split=train is unknown"),
    ):
        assert trainlab.eval.main(args) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_predict_applies_the_runs_eval_transforms_to_image_files(tmp_path):
    """A banknote-style folder split as files; predict's probabilities equal the model on the test split."""
    root = tmp_path / "notes"
    for split, count, seed in (("train", 16, 0), ("valid", 4, 1), ("test", 5, 2)):
        write_image_folder(root / "rmb_split" / split, ["1", "100"], per_class=count, seed=seed)
    trained = run_cli(
        ["experiment=tutorial_rmb", f"data.root={root}", "trainer.max_epochs=2"], cwd=tmp_path
    ).check()
    checkpoint = Path(trained.metrics["last_ckpt"])
    out = tmp_path / "predictions.csv"
    done = module_cli(
        "trainlab.predict",
        f"ckpt_path={checkpoint}",
        f"inputs={root / 'rmb_split' / 'test'}",
        f"out={out}",
        "batch_size=3",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {Path(row["file"]): row for row in csv.DictReader(out.open())}
    assert len(rows) == 10 and {row["predicted"] for row in rows.values()} <= {"1", "100"}
    assert "trainlab.predict: 10 images" in done.stdout

    # the same files through the run's own test dataset and the restored model
    stored, cfg, classes = load_run_checkpoint(checkpoint)
    # per-image datasets keep their files' paths; that the batched pipeline's eval images equal these is
    # tests/data/test_batched_pipeline.py's job
    cfg.data.pipeline = "torchvision"
    datamodule = build("data", cfg.data)
    datamodule.setup("fit")
    test = datamodule.splits.test
    module = rebuild_module(stored, cfg, classes, checkpoint)
    with torch.no_grad():
        probabilities = module.loss.probabilities(module(torch.stack([test[i][0] for i in range(len(test))])))
    for path, probs in zip(test.paths, probabilities, strict=True):
        row = rows[Path(path)]
        assert row["predicted"] == classes[int(probs.argmax())]
        assert float(row["probability"]) == pytest.approx(float(probs.max()), abs=1e-5)


def test_predict_on_the_real_banknotes(tmp_path, shared_rmb):
    """The tutorial's ending ("LeNet got 100 Yuan"), on every real note of one class."""
    trained = run_cli(
        ["experiment=tutorial_rmb", f"data.root={shared_rmb}", "trainer.max_epochs=4"], cwd=tmp_path
    ).check()
    out = tmp_path / "p.csv"
    done = module_cli(
        "trainlab.predict",
        f"ckpt_path={trained.metrics['best_ckpt']}",
        f"inputs={shared_rmb / 'RMB_data' / '100'}",
        f"out={out}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 100
    assert sum(row["predicted"] == "100" for row in rows) >= 90


def test_predict_names_bad_inputs(tmp_path, sweep, capsys):
    checkpoint = job_metrics(sweep / "0")["best_ckpt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    for args, message in (
        ([f"ckpt_path={checkpoint}", f"inputs={tmp_path / 'nowhere'}"], "does not exist"),
        ([f"ckpt_path={checkpoint}", f"inputs={empty}"], "holds no image files"),
        ([f"ckpt_path={checkpoint}", f"inputs={broken}"], f"Cannot read image {broken}"),
        ([f"ckpt_path={checkpoint}", f"inputs={empty}", "batch_size=0"], "batch_size=0 is invalid"),
        ([f"ckpt_path={checkpoint}"], "inputs is required"),
    ):
        assert trainlab.predict.main(args) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.rglob("*.csv"))  # nothing half-written


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_run_stopped_by_a_signal_records_it_was_interrupted(tmp_path, signum):
    """Ctrl+C or a scheduler's SIGTERM: the run exits 128 + signal and its status says interrupted."""
    run_dir = tmp_path / "run"
    overrides = ["trainer.max_epochs=200", f"hydra.run.dir={run_dir}", "trainer.enable_progress_bar=false"]
    process = subprocess.Popen(
        [sys.executable, "-c", AS_FROM_A_TERMINAL, *overrides],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and "epoch 1/200" not in _read(run_dir / "train.log"):
        time.sleep(0.2)  # training is under way once the first epoch is logged
    process.send_signal(signum)
    try:
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()  # no stray trainer if the signal went unanswered
    expected = 128 + signum  # 143 for SIGTERM, as schedulers expect; 130 for Ctrl+C
    status = json.loads((run_dir / "status.json").read_text())
    assert process.returncode == expected, (process.returncode, status, stderr[-2000:])
    assert status["status"] == "interrupted" and status["ended"] and status["duration_s"] >= 0, status


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
