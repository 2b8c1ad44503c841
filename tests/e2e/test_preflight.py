"""Bad inputs stop before training, through the real CLI: one `error:` paragraph naming the key or file,
no traceback, no training step, no checkpoint, no TensorBoard run, and a run the browser hides.

Cases that Hydra refuses (and a few of those preflight finds) run as single commands, checking the
console; the rest are tests/conf/bad_input/<case>.yaml, swept in one multirun (each job a run dir of
its own), each file naming the message it expects in its `# expect:` line: a new case is a new file.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import run_cli
from realformat import write_image_folder

pytestmark = pytest.mark.slow

CASES_DIR = Path(__file__).resolve().parents[1] / "conf"
CASES = sorted(p.stem for p in (CASES_DIR / "bad_input").glob("*.yaml"))


def expected(case: str) -> str:
    lines = (CASES_DIR / "bad_input" / f"{case}.yaml").read_text().splitlines()
    line = next(text for text in lines if "expect:" in text)
    return line.split("expect:", 1)[1].strip()


@pytest.fixture(scope="module")
def bad_data(tmp_path_factory) -> Path:
    """Image folders with one flaw each (and a good RMB-like one), in the real on-disk format."""
    root = tmp_path_factory.mktemp("bad_data")
    write_image_folder(root / "rmb" / "RMB_data", ["1", "100"], per_class=10)
    write_image_folder(root / "single_class", ["only"], per_class=10)
    for split, classes in (("train", "ab"), ("val", "ab"), ("test", "ab")):
        write_image_folder(root / "broken_test" / split, list(classes), per_class=4)
        write_image_folder(root / "empty_val" / split, list(classes), per_class=4)
    (root / "broken_test" / "test" / "b" / "broken.jpg").write_text("this is not a JPEG")
    (root / "empty_val" / "val" / "a" / "empty.png").write_bytes(b"")
    write_image_folder(root / "val_only_class" / "train", ["a", "b"], per_class=4)
    write_image_folder(root / "val_only_class" / "val", ["a", "b", "c"], per_class=4)
    return root


@pytest.fixture(scope="module")
def swept(bad_data, tmp_path_factory) -> tuple[Path, str]:
    cwd = tmp_path_factory.mktemp("sweep")
    sweep = cwd / "sweep"
    result = run_cli(
        [
            "-m",
            f"hydra.searchpath=[file://{CASES_DIR}]",
            f"+bad_input={','.join(CASES)}",
            f"hydra.sweep.dir={sweep}",
            "hydra.sweep.subdir=${hydra.runtime.choices.bad_input}",
            "trainer.enable_progress_bar=false",
        ],
        cwd=cwd,
        module="trainlab",
        timeout=600,
        env={"BAD_INPUT_DATA": str(bad_data)},
    )
    assert result.returncode != 0  # every job failed
    return sweep, result.stdout + result.stderr


def test_there_are_at_least_30_bad_inputs():
    assert len(CASES) + len(SINGLE) >= 30


@pytest.mark.parametrize("case", CASES)
def test_each_bad_input_stops_at_start_with_its_message(swept, case):
    sweep, output = swept
    run_dir = sweep / case
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "failed" and status.get("at_start") is True, status
    assert expected(case) in status["error"], status["error"]
    assert "\n" not in status["error"] and "Traceback" not in status["error"]
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "tensorboard").exists()
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "config.yaml").exists()
    log = (run_dir / "train.log").read_text()
    assert not re.search(r"epoch \d+/\d+ \|", log)  # no epoch trained
    assert "Traceback" not in output


def test_the_run_browser_hides_runs_refused_at_start(swept):
    from trainlab.runs import list_runs

    sweep, _ = swept
    listing = list_runs(sweep)
    assert f"no runs under {sweep}" in listing
    assert f"{len(CASES)} refused at start-up (a config or data error) not shown, --all lists them" in listing
    every = list_runs(sweep, show_all=True)
    assert every.count("refused") >= len(CASES)


# (overrides, what stderr says); hydra.run.dir is the test's own unless the case sets it
SINGLE = [
    (
        ["optimizer=adam"],
        "'optimizer' is neither a config group nor a key, so nothing would read it. Did you mean optim=adam?",
    ),
    (["+optimizer=adam"], "Did you mean optim=adam?"),
    (
        ["optim.learning_rate=0.1"],
        "optim has no key 'learning_rate', so nothing would read it. Did you mean optim.lr=0.1?",
    ),
    (["trainer.max_epohcs=3"], "Did you mean trainer.max_epochs=3?"),
    (["optim=adamx"], "optim=adamx is not an option of the optim config group. Did you mean optim=adamax?"),
    (["model=resnet"], "Did you mean model=resnet18?"),
    (
        ["hydra.run.dir=/proc/x"],
        "Cannot create or write the run dir (/proc/x): No such file or directory. Set hydra.run.dir",
    ),
    (["-m", "hydra.sweep.dir=/proc/y", "optim=sgd,adam"], "Set hydra.sweep.dir to a folder you can write to"),
    (["loss=bce_logits", "loss.target=index"], "It takes loss.input=logits loss.target=one_hot"),
    (["callbacks.best_checkpoint.monitor=val/f1"], "Did you mean callbacks.best_checkpoint.monitor=val/acc?"),
    (["trainer.max_epochs=0"], "trainer.max_epochs=0 trains nothing"),
    (
        ["logger=mlflow", "logger.mlflow.tracking_uri=sqlite:////proc/nope/x.db"],
        "logger.mlflow.tracking_uri=sqlite:////proc/nope/x.db: the SQLite file /proc/nope/x.db cannot be "
        "created or opened",
    ),
    (
        ["logger=[tensorboard,mlfow]"],
        "logger=mlfow is not an option of the logger config group. Did you mean logger=mlflow?",
    ),
    (["logger=mlflow", "logger.mlflow.tags.team=vision"], "write +logger.mlflow.tags.team=vision"),
]


@pytest.mark.parametrize(("overrides", "message"), SINGLE, ids=[" ".join(o) for o, _ in SINGLE])
def test_a_bad_command_line_gets_one_error_paragraph(tmp_path, overrides, message):
    """The command exactly as typed (its run dir, if any, under tmp_path/outputs)."""
    done = subprocess.run(
        [sys.executable, "-m", "trainlab", *overrides],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: "), done.stderr[-3000:]
    assert message in errors[0], errors[0]
    assert "Traceback" not in done.stderr + done.stdout
    assert not [p for p in tmp_path.rglob("*") if p.name in ("checkpoints", "tensorboard", "metrics.json")]


def test_suspicious_settings_warn_once_and_the_run_records_what_ran(cli, tmp_path):
    """Legal but rarely meant: softmax into a loss that applies its own, checkpoints keeping the worst
    epoch. And what Lightning resolves is recorded: 16-mixed runs as bf16-mixed on a CPU."""
    result = cli(
        "loss.input=probs",
        "callbacks.best_checkpoint.mode=min",
        "trainer.precision=16-mixed",
        "scheduler=plateau",
        "trainer.check_val_every_n_epoch=2",
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=2",
        "test=false",
        "~callbacks.figures",
    ).check()
    out = result.stdout + result.stderr
    warning = "loss.input=probs: CrossEntropyLoss applies log-softmax to its input itself"
    assert out.count(warning) == 1
    assert out.count("callbacks.best_checkpoint.mode=min with callbacks.best_checkpoint.monitor=val/acc") == 1
    assert "trainer.precision=16-mixed -> bf16-mixed (float16 autocast needs a CUDA GPU" in out
    assert "scheduler.frequency=2: scheduler.monitor=val/loss exists only in the epochs that validate" in out
    assert "AMP with fp16" not in out  # Lightning's own warning is replaced by the line above
    config = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert config["trainer"]["precision"] == "bf16-mixed" and config["trainer"]["accelerator"] == "cpu"
    assert config["trainer"]["strategy"] == "single_device" and config["scheduler"]["frequency"] == 2
    log = (result.run_dir / "train.log").read_text()
    assert re.search(r"preflight: .* checked in \d+\.\d\d s", log)
    assert "| precision bf16-mixed on 1 cpu device(s)" in log  # the run: line states what runs
    assert result.metrics["epochs"] == 2


def test_a_broken_image_is_found_before_training_in_either_pipeline(bad_data, tmp_path):
    for pipeline in ("torchvision", "batched"):
        result = run_cli(
            [
                "data=imagefolder",
                f"data.root={bad_data / 'broken_test'}",
                "data.image_size=32",
                f"data.pipeline={pipeline}",
                "data.train_transforms=[{_target_: torchvision.transforms.v2.Resize, size: [32, 32]},"
                " {_target_: trainlab.data.transforms.ToTensor}]",
                "data.eval_transforms=${data.train_transforms}",
            ],
            cwd=tmp_path,
            run_dir=tmp_path / pipeline,
            timeout=120,
        )
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
        assert str(bad_data / "broken_test" / "test" / "b" / "broken.jpg") in result.stderr
        assert not (tmp_path / pipeline / "checkpoints").exists()
