"""Run dirs read back, sweep summaries and the run browser, on run dirs laid out as trainlab writes them."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from trainlab import runs
from trainlab.errors import TrainlabError
from trainlab.records.catalog import find_runs, rank, read_run
from trainlab.records.status import mark_finished, mark_running, read_status
from trainlab.records.sweep import write_sweep_summary


def fake_run(
    run_dir: Path,
    overrides: list[str],
    metrics: dict | None = None,
    status: str | None = "completed",
    error: str | None = None,
    job: int | None = None,
    lr: float = 0.001,
    data: str = "digits",
) -> Path:
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    hydra = {
        "mode": "MULTIRUN" if job is not None else "RUN",
        "job": {"num": job if job is not None else "???"},
        "runtime": {"choices": {"data": data}},
    }
    (run_dir / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": hydra}))
    config = {"optim": {"lr": lr}, "paths": {"output_dir": str(run_dir)}, "seed": 42}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    if metrics is not None:
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
    if status is not None:
        mark_running(run_dir)
        if status != "running":
            mark_finished(run_dir, status, error)
    return run_dir


def metrics(best: float, test: float, epochs: int = 2) -> dict:
    return {
        "val/acc_best": best,
        "val/acc": best - 0.01,
        "test/acc": test,
        "epochs": epochs,
        "wall_s": 3.5,
        "best_ckpt": "/x/best.ckpt",
        "last_ckpt": "/x/last.ckpt",
    }


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    root = tmp_path / "multirun" / "2026-11-24" / "10-00-00"
    fake_run(root / "0", ["optim=sgd"], metrics(0.80, 0.79), job=0, lr=0.05)
    fake_run(root / "1", ["optim=adam"], metrics(0.95, 0.93), job=1)
    fake_run(
        root / "2",
        ["optim=sparse_adam"],
        None,
        "failed",
        "optim=sparse_adam needs | sparse\ngradients",
        job=2,
    )
    fake_run(root / "3", ["optim=adamw"], metrics(0.90, float("nan")), job=3)
    return root


def test_status_records_start_end_duration_and_error(tmp_path):
    mark_running(tmp_path)
    assert read_status(tmp_path)["status"] == "running"
    mark_finished(tmp_path, "failed", "boom")
    status = read_status(tmp_path)
    assert status["status"] == "failed" and status["error"] == "boom" and status["duration_s"] >= 0
    assert status["started"] <= status["ended"]
    with pytest.raises(ValueError, match="unknown final status"):
        mark_finished(tmp_path, "running")


def test_a_run_dir_reads_back_with_its_job_number_and_sweep(sweep):
    record = read_run(sweep / "1")
    assert record.job == "1" and record.sweep_dir == sweep and record.status == "completed"
    assert record.overrides == ["optim=adam"] and record.metric("val/acc_best") == 0.95
    assert record.duration_s == 3.5 and record.best_ckpt == "/x/best.ckpt"
    assert read_run(sweep / "3").metric("test/acc") is None  # NaN is no result
    failed = read_run(sweep / "2")
    assert failed.status == "failed" and failed.metric("val/acc_best") is None and "sparse" in failed.error


def test_single_runs_are_no_sweep_jobs_and_runs_without_status_count_by_metrics(tmp_path):
    single = fake_run(tmp_path / "a", ["trainer.max_epochs=1"], metrics(0.5, 0.5), status=None)
    record = read_run(single)
    assert record.job == "" and record.sweep_dir is None and record.status == "completed"
    assert read_run(fake_run(tmp_path / "b", [], None, status=None)).status == "unknown"


def test_ranking_puts_the_best_first_and_unfinished_runs_last(sweep):
    order = [r.job for r in rank(find_runs(sweep))]
    assert order == ["1", "3", "0", "2"]


def test_sweep_summary_has_one_row_per_job_best_first_with_the_failure_and_its_error(sweep):
    write_sweep_summary(sweep)
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [row["job"] for row in rows] == ["1", "3", "0", "2"]
    assert rows[0]["overrides"] == "optim=adam" and float(rows[0]["val/acc_best"]) == 0.95
    assert (
        float(rows[0]["test/acc"]) == 0.93 and rows[0]["epochs"] == "2" and rows[0]["status"] == "completed"
    )
    assert rows[0]["run_dir"] == str(sweep / "1") and rows[1]["test/acc"] == ""
    assert rows[3]["status"] == "failed" and rows[3]["error"].startswith("optim=sparse_adam needs")
    table = (sweep / "summary.md").read_text()
    assert "| 1 | optim=adam | completed | 0.9500 |" in table
    assert "needs \\| sparse gradients" in table  # a pipe or newline in an error cannot break the table
    assert table.count("\n| ") == 5  # header + 4 jobs


def test_runs_lists_every_run_with_its_result(sweep, tmp_path):
    fake_run(tmp_path / "single", ["loss=nll"], metrics(0.7, 0.6))
    listing = runs.list_runs(tmp_path)
    lines = listing.splitlines()
    assert lines[0].split()[:3] == ["run", "started", "status"]
    row = next(line for line in lines if line.startswith("multirun/2026-11-24/10-00-00/1 "))
    assert "completed" in row and "0.9500" in row and "0.9300" in row and row.endswith("optim=adam")
    assert any(line.startswith("single ") and "loss=nll" in line for line in lines)
    assert "5 runs, 1 sweeps" in listing and str(sweep / "summary.md") in listing


def test_runs_best_names_the_best_run_and_its_checkpoint(sweep):
    text = runs.best(sweep)
    assert f"run_dir: {sweep / '1'}" in text and "checkpoint: /x/best.ckpt" in text


def test_runs_best_ranks_within_each_dataset_and_says_which(sweep, tmp_path):
    fake_run(tmp_path / "folder", ["data=imagefolder"], metrics(0.99, 0.98), data="imagefolder")
    blocks = runs.best(tmp_path).split("\n\n")
    assert (
        blocks[0].startswith("data=digits: the best of 3 finished run(s)") and f"{sweep / '1'}" in blocks[0]
    )
    assert blocks[1].startswith("data=imagefolder: the best of 1 finished run(s)")
    only = runs.best(tmp_path, "digits")
    assert "imagefolder" not in only and f"run_dir: {sweep / '1'}" in only
    with pytest.raises(TrainlabError, match="on data=cifar10"):
        runs.best(tmp_path, "cifar10")


def test_runs_list_shows_each_failed_runs_error(sweep):
    listing = runs.list_runs(sweep)
    errors = listing.split("errors:\n", 1)[1].splitlines()
    assert errors == ["  2: optim=sparse_adam needs | sparse"]


def test_runs_compare_fits_the_terminal_and_names_the_runs_below(sweep):
    fake_run(sweep / "long", ["x"], metrics(0.5, 0.5), lr=0.123456789)
    (sweep / "long" / "config.yaml").write_text(yaml.safe_dump({"note": "n" * 300, "seed": 42}))
    text = runs.compare([sweep / "0", sweep / "long"], width=80)
    assert max(len(line) for line in text.splitlines()[:-2]) <= 80
    assert "…" in text and text.splitlines()[-2:] == [f"run 1: {sweep / '0'}", f"run 2: {sweep / 'long'}"]


def test_runs_best_without_finished_runs_is_an_error(tmp_path):
    fake_run(tmp_path / "r", [], None, "failed", "x")
    with pytest.raises(TrainlabError, match="nothing to rank"):
        runs.best(tmp_path)


def test_runs_compare_shows_metrics_and_only_the_config_keys_that_differ(sweep):
    text = runs.compare([sweep / "0", sweep / "1"])
    metric_lines = {line.split()[0]: line.split()[1:] for line in text.split("\n\n")[0].splitlines()}
    assert metric_lines["val/acc_best"] == ["0.8", "0.95"] and metric_lines["status"] == ["completed"] * 2
    config_part = text.split("\n\n")[1]
    assert "optim.lr" in config_part and "0.05" in config_part
    assert "paths.output_dir" not in config_part and "seed" not in config_part  # own dir, equal value


def test_runs_compare_refuses_a_dir_that_is_no_run(tmp_path):
    with pytest.raises(TrainlabError, match="is not a run dir"):
        runs.compare([tmp_path])


def test_runs_main_exit_codes(sweep, tmp_path, capsys):
    assert runs.main([str(sweep)]) == 0
    assert runs.main([str(tmp_path / "nowhere")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_a_running_run_whose_process_is_gone_reads_as_killed(tmp_path):
    """kill -9 leaves no chance to record an outcome; the dead process id tells instead."""
    run_dir = fake_run(tmp_path / "r", ["trainer.max_epochs=99"], None, status="running")
    assert read_run(run_dir).status == "running"  # this test's own process is alive
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    status = json.loads((run_dir / "status.json").read_text())
    (run_dir / "status.json").write_text(json.dumps({**status, "pid": int(gone.stdout)}))
    assert read_run(run_dir).status == "killed"
    (run_dir / "status.json").write_text(json.dumps({**status, "pid": int(gone.stdout), "host": "elsewhere"}))
    assert read_run(run_dir).status == "running"  # another machine's process cannot be checked from here
