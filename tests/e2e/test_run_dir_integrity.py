"""The run dir against outside interference: a second writer, signals in every stage, an unwritable dir,
a broken config file, a rank that dies."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli
from faults import fault, fault_env

pytestmark = pytest.mark.slow

TINY = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "~callbacks.figures",
]


# setpriv: drop the capabilities with which root writes anywhere
NO_OVERRIDE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--inh-caps", "-dac_override"]


def status(run_dir: Path) -> dict:
    return json.loads((run_dir / "status.json").read_text())


def partial_files(run_dir: Path) -> list[Path]:
    return [p for p in run_dir.rglob("*") if p.name.endswith(".partial")]


def test_a_second_start_in_a_run_dir_in_use_is_refused_and_the_first_run_is_untouched(tmp_path):
    run_dir = tmp_path / "run"
    marker = tmp_path / "training"
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trainlab",
            "trainer.max_epochs=2",
            "test=false",
            "trainer.enable_progress_bar=false",
            f"hydra.run.dir={run_dir}",
            fault("MarkTraining", path=str(marker)),
        ],
        cwd=tmp_path,
        env={**os.environ, **fault_env()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not marker.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    second = run_cli(["trainer.max_epochs=2", "test=false"], cwd=tmp_path, run_dir=run_dir, timeout=120)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-3000:]
    assert second.returncode == 1 and "Traceback" not in second.stderr
    assert second.stderr.startswith(f"error: run dir {run_dir} is in use by pid {first.pid} on host ")
    assert status(run_dir)["status"] == "completed"  # the first run's record, not the second's
    assert len(list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))) == 1
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir())[-1] == "last.ckpt"
    assert not list((run_dir / "checkpoints").glob("*-v1.ckpt"))
    # once the first has ended, the dir is free: a resume into it works, and removes what writers killed
    # mid-write left anywhere in the dir
    planted = [run_dir / ".metrics.json.x1.partial", run_dir / "tensorboard" / ".curves.png.x2.partial"]
    for path in planted:
        path.write_bytes(b"half")
    resumed = run_cli(["trainer.max_epochs=3", "test=false", "ckpt_path=last"], cwd=tmp_path, run_dir=run_dir)
    assert resumed.check().metrics["epochs"] == 3
    assert not partial_files(run_dir)


@pytest.mark.parametrize(
    ("stage", "name", "code"),
    [
        ("fit", "SIGTERM", 143),
        ("fit", "SIGINT", 130),
        ("test", "SIGTERM", 143),
        ("test", "SIGINT", 130),
        ("test_end", "SIGTERM", 143),
    ],
)
def test_a_signal_outside_training_steps_exits_128_plus_it_and_records_the_run_interrupted(
    tmp_path, stage, name, code
):
    run_dir = tmp_path / "run"
    result = run_cli(
        [*TINY, fault("SignalInStage", stage=stage, signame=name)],
        cwd=tmp_path,
        run_dir=run_dir,
        env=fault_env(),
    )
    assert result.returncode == code, result.stderr[-3000:]
    recorded = status(run_dir)
    assert recorded["status"] == "interrupted" and f"interrupted by {name}" in recorded["error"]
    assert "Traceback" not in result.stderr and not partial_files(run_dir)
    assert not (run_dir / "metrics.json").exists()
    if stage.startswith(
        "test"
    ):  # training had ended: the hint resumes (which says so) or tests the checkpoint
        assert f"the same command plus hydra.run.dir={run_dir} ckpt_path=last" in result.stderr
        resumed = run_cli([*TINY, "ckpt_path=last"], cwd=tmp_path, run_dir=run_dir)
        assert resumed.returncode == 0 and "nothing left to train" in resumed.stdout
    else:
        assert "no checkpoint was written yet" in result.stderr


@pytest.mark.skipif(shutil.which("setpriv") is None or os.geteuid() != 0, reason="needs setpriv as root")
def test_a_run_dir_it_cannot_write_is_one_paragraph(tmp_path):
    """As root every dir is writable: drop the capabilities that override file permissions."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    for run_dir in (locked / "run", locked):  # cannot be created; exists but cannot be written
        done = subprocess.run(
            [*NO_OVERRIDE, sys.executable, "-m", "trainlab", f"hydra.run.dir={run_dir}"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert done.stderr.startswith("error: Cannot create or write the run dir (")
        assert "Permission denied. Set hydra.run.dir to a folder you can write to" in done.stderr
    assert list(locked.iterdir()) == []


def test_a_yaml_syntax_error_names_file_line_and_column(tmp_path):
    (tmp_path / "mine" / "loss").mkdir(parents=True)
    broken = tmp_path / "mine" / "loss" / "mine.yaml"
    broken.write_text("defaults:\n  - ce\ncriterion:\n  weight: [1, 2\n  reduction: : mean\n")
    done = subprocess.run(
        [sys.executable, "-m", "trainlab", f"hydra.searchpath=[file://{tmp_path / 'mine'}]", "loss=mine"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr == (
        f"error: {broken}, line 5, column 12: not valid YAML: expected ',' or ']', but got ':' (while "
        "parsing a flow sequence). Fix the file there.\n"
    )


def test_a_killed_ddp_rank_is_named_with_the_checkpoint_to_resume_from(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli(
        [
            "trainer=ddp_cpu",
            "trainer.max_epochs=2",
            "test=false",
            "~callbacks.figures",
            "callbacks.last_checkpoint.every_n_train_steps=2",
            "callbacks.last_checkpoint.every_n_epochs=null",
            fault("KillRankAtStep", step=5),
        ],
        cwd=tmp_path,
        run_dir=run_dir,
        env=fault_env(),
        timeout=300,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert "rank 1 (pid " in result.stderr and "killed by SIGKILL) died" in result.stderr
    assert f"The last checkpoint is {run_dir / 'checkpoints' / 'last.ckpt'}" in result.stderr
    assert status(run_dir)["status"] == "failed"
