"""End-to-end: `python -m trainlab ...` in a subprocess, on real data or data in the real on-disk format."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from realformat import CIFAR_CLASSES, write_cifar10_from_images

pytestmark = pytest.mark.slow

REQUIRED_METRICS = ("val/acc", "val/loss", "val/acc_best", "test/acc", "test/loss", "epochs", "wall_s")


def scalars(run_dir: Path) -> dict[str, list[float]]:
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    return {tag: [e.value for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_default_run_on_digits_writes_everything_and_learns(cli):
    """What `make run` does: the seed CNN on the bundled digits."""
    result = cli("trainer.max_epochs=8").check()
    run = result.run_dir
    metrics = result.metrics
    assert all(key in metrics for key in REQUIRED_METRICS)
    assert metrics["val/acc"] >= 0.90 and metrics["test/acc"] >= 0.90 and metrics["epochs"] == 8
    assert metrics["val/acc_best"] >= metrics["val/acc"]
    assert 0 < metrics["wall_s"] < 300

    config = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
    assert (
        config["model"]["_target_"] == "trainlab.models.tudui.TutorialCNN"
        and config["trainer"]["max_epochs"] == 8
    )
    assert yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())[0] == "trainer.max_epochs=8"
    assert (run / "train.log").read_text().count("epoch ") >= 8
    assert (run / "checkpoints" / "last.ckpt").is_file()
    best = Path(metrics["best_ckpt"])
    assert best.parent == run / "checkpoints" and best.is_file() and best.name != "last.ckpt"
    checkpoint = torch.load(best, weights_only=True, map_location="cpu")
    assert checkpoint["trainlab_config"]["data"]["num_classes"] == 10 and checkpoint["optimizer_states"]

    curves = scalars(run)
    for tag in (
        "train/loss",
        "train/acc",
        "val/loss",
        "val/acc",
        "test/acc",
        "lr/default",
        "train/loss_step",
    ):
        assert tag in curves, f"{tag} missing from TensorBoard: {sorted(curves)}"
    assert len(curves["val/acc"]) == 8 and curves["train/loss"][-1] < curves["train/loss"][0]
    assert curves["lr/default"][0] > curves["lr/default"][-1]  # cosine schedule decays
    assert f"tensorboard --logdir {run / 'tensorboard'}" in result.stdout
    assert (run / "provenance.json").is_file()
    for figure in ("curves.png", "confusion_matrix.png", "predictions.png", "test_confusion_matrix.png"):
        assert (run / figure).stat().st_size > 1000, figure
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "completed" and status["error"] is None and status["duration_s"] >= 0


def test_bce_logits_with_adam_runs_and_learns(cli):
    metrics = cli("loss=bce_logits", "optim=adam", "data=digits", "trainer.max_epochs=2").check().metrics
    assert metrics["val/acc"] >= 0.75 and metrics["epochs"] == 2


def test_cifar10_real_format_trains_validates_and_tests(cli, cifar10_root):
    result = cli(
        "data=cifar10", f"data.root={cifar10_root}", "data.val_size=20", "trainer.max_epochs=4"
    ).check()
    metrics = result.metrics
    assert metrics["val/acc"] >= 0.5 and metrics["test/acc"] >= 0.5  # 10 classes: chance is 0.1
    assert len(scalars(result.run_dir)["test/acc"]) == 1


def test_tutorial_cifar10_recipe_runs(cli, cifar10_root):
    result = cli(
        "experiment=tutorial_cifar10", f"data.root={cifar10_root}", "data.val_size=20", "trainer.max_epochs=1"
    )
    config = yaml.safe_load((result.check().run_dir / ".hydra" / "config.yaml").read_text())
    assert config["optim"]["lr"] == 0.01 and config["scheduler"]["scheduler"] is None
    assert result.metrics["test/acc"] is not None


def test_rmb_with_lenet_on_a_generated_folder(cli, rmb_root):
    result = cli(
        "data=rmb",
        "model=lenet",
        f"data.root={rmb_root}",
        "trainer.max_epochs=6",
        "optim=sgd",
        "optim.momentum=0.9",
    ).check()
    metrics = result.metrics
    assert metrics["val/acc"] >= 0.75 and metrics["test/acc"] is not None
    config = yaml.safe_load((result.run_dir / "config.yaml").read_text())  # resolved, as used
    assert config["data"]["num_classes"] == 2 and config["model"]["num_classes"] == 2
    assert config["data"]["root"] == str(rmb_root)


def test_tutorial_rmb_on_the_real_banknotes(cli, shared_rmb):
    """The RMB tutorial recipe on the 200 real notes: LeNet separates 1 and 100 yuan."""
    metrics = cli("experiment=tutorial_rmb", f"data.root={shared_rmb}").check().metrics
    assert metrics["epochs"] == 10
    assert metrics["val/acc_best"] >= 0.9 and metrics["test/acc"] >= 0.9


def test_cifar10_format_built_from_real_images_learns(cli, shared_cifar_train, tmp_path):
    """3,000 real CIFAR-10 images written in the official pickled format, read back by data=cifar10."""
    rng = np.random.default_rng(0)
    images, labels = [], []
    for label, name in enumerate(CIFAR_CLASSES):
        files = sorted((shared_cifar_train / name).glob("*.jpg"))[:300]
        images += [np.asarray(Image.open(f).convert("RGB")) for f in files]
        labels += [label] * len(files)
    order = rng.permutation(len(images))
    root = write_cifar10_from_images(
        tmp_path / "cifar", np.stack(images)[order], [labels[i] for i in order], 500
    )
    metrics = (
        cli("data=cifar10", f"data.root={root}", "data.val_size=250", "trainer.max_epochs=3").check().metrics
    )
    assert metrics["val/acc"] >= 0.25 and metrics["test/acc"] >= 0.25  # chance is 0.10


def test_unknown_option_lists_the_available_ones(cli):
    result = cli("data=nope")
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(
        "error: data=nope is not an option of the data config group. The options: "
    )
    for option in ("cifar10", "digits", "imagefolder", "rmb"):
        assert option in result.stderr


def test_a_misspelled_key_is_named_before_anything_runs(cli):
    result = cli("trainer.max_epoch=3")
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: trainer.max_epoch=3: trainer has no key 'max_epoch'")
    assert "Did you mean trainer.max_epochs=3?" in result.stderr
    assert not result.run_dir.exists()


def test_missing_dataset_is_one_clear_error_and_nothing_is_trained(cli, tmp_path):
    result = cli("data=cifar10", f"data.root={tmp_path / 'nowhere'}")
    assert result.returncode == 1
    assert result.stderr.startswith("error: CIFAR-10 not found") and "Traceback" not in result.stderr
    assert str(tmp_path / "nowhere" / "cifar-10-batches-py") in result.stderr
    assert not (result.run_dir / "checkpoints").exists() and not (result.run_dir / "metrics.json").exists()


def test_resume_from_a_checkpoint_continues_the_run(cli, tmp_path):
    first = cli(
        "trainer.max_epochs=2", "scheduler=step", "scheduler.scheduler.step_size=1", run_dir=tmp_path / "a"
    ).check()
    last = first.run_dir / "checkpoints" / "last.ckpt"
    second = cli(
        "trainer.max_epochs=3",
        "scheduler=step",
        "scheduler.scheduler.step_size=1",
        f"ckpt_path={last}",
        run_dir=tmp_path / "b",
    ).check()
    assert second.metrics["epochs"] == 3
    lrs = scalars(second.run_dir)["lr/default"]
    assert lrs and all(abs(lr - 1e-3 * 0.1**2) < 1e-12 for lr in lrs)  # the third epoch, not a fresh start


def test_installed_package_runs_from_another_directory(tmp_path):
    """A normal (non-editable) install: the configs must ship inside the package."""
    repo = Path(__file__).resolve().parents[2]
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(repo),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    assert (target / "trainlab" / "conf" / "data" / "rmb.yaml").is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PYTHONPATH": str(target)}
    where = subprocess.run(
        [sys.executable, "-c", "import trainlab; print(trainlab.__file__)"],
        cwd=elsewhere,
        env={**__import__("os").environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.strip().startswith(str(target))
    from conftest import run_cli

    result = run_cli(["trainer.max_epochs=1"], cwd=elsewhere, env=env).check()
    assert result.metrics["val/acc"] > 0.5


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.batch_size=0"], "data.batch_size=0 is invalid: expected an integer >= 1"),
        (["optim.lr=-1"], "optim.lr=-1 is invalid: expected a number >= 0"),
        (["trainer.max_epochs=abc"], "trainer.max_epochs='abc' is invalid: expected an integer >= -1"),
        (["optim.betas=[0.9,2]"], "Cannot build optim from conf/optim/adamw.yaml: Invalid beta parameter"),
        (
            ["model.num_classes=3"],
            "model=tudui outputs scores of shape (3,) per image, but the data has 10 classes",
        ),
        (["model.image_size=64"], "model=tudui cannot take data=digits images of shape (1, 32, 32)"),
        (["data=imagefolder"], "data.root has no value: conf/data/imagefolder.yaml leaves it to you"),
        (["loss.target=onehot"], "loss.target='onehot' is unknown; choose one of: index, one_hot"),
    ],
)
def test_bad_values_stop_before_training_with_one_paragraph(cli, overrides, message):
    result = cli(*overrides)
    assert result.returncode == 1, result.stdout[-2000:]
    assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (result.run_dir / "checkpoints").exists() and not (result.run_dir / "tensorboard").exists()
    status = json.loads((result.run_dir / "status.json").read_text())
    assert status["status"] == "failed" and message in status["error"]


def test_sweep_runs_every_combination_in_its_own_dir(cli, tmp_path):
    sweep = tmp_path / "sweep"
    result = cli(
        "-m",
        "optim=sgd,adam",
        "loss=ce,bce_logits",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=5",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert len(jobs) == 4
    seen = set()
    for job in jobs:
        config = yaml.safe_load((job / "config.yaml").read_text())
        seen.add((config["optim"]["_target_"], config["loss"]["criterion"]["_target_"]))
        assert (job / "metrics.json").is_file() and (job / "tensorboard").is_dir()
    assert len(seen) == 4


def test_console_script_is_the_same_app(tmp_path):
    script = Path(sys.executable).with_name("trainlab")
    done = subprocess.run(
        [str(script), "--cfg", "job", "data=rmb"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "trainlab.data.imagefolder.ImageFolderDataModule" in done.stdout


def test_param_groups_from_the_command_line_reach_the_optimizer(cli):
    result = cli(
        r"optim.param_groups=[{name:features,params:'^net\.features\.',lr_scale:0.1}]",
        "optim.no_decay=true",
        "scheduler=none",
        "trainer.max_epochs=2",
    ).check()
    checkpoint = torch.load(result.run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    groups = {g["name"]: g for g in checkpoint["optimizer_states"][0]["param_groups"]}
    assert set(groups) == {"features", "features_no_decay", "default", "default_no_decay"}
    assert groups["features"]["lr"] == pytest.approx(1e-4) and groups["default"]["lr"] == pytest.approx(1e-3)
    assert groups["features_no_decay"]["weight_decay"] == 0.0 and groups["features"]["weight_decay"] == 0.01
    curves = scalars(result.run_dir)
    assert curves["lr/features"][0] == pytest.approx(1e-4) and curves["lr/default"][0] == pytest.approx(1e-3)
    assert result.metrics["val/acc"] > 0.8


def test_finetune_callback_adds_the_backbone_group_and_logs_its_lr(cli):
    result = cli(
        "callbacks=finetune",
        "callbacks.finetune.unfreeze_at_epoch=1",
        "scheduler=none",
        "trainer.max_epochs=2",
    ).check()
    checkpoint = torch.load(result.run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    groups = {g["name"]: g["lr"] for g in checkpoint["optimizer_states"][0]["param_groups"]}
    assert groups == {"default": pytest.approx(1e-3), "backbone": pytest.approx(1e-4)}
    curves = scalars(result.run_dir)
    assert curves["lr/backbone"] and curves["lr/backbone"][0] == pytest.approx(1e-4)
    assert len(curves["lr/default"]) > len(curves["lr/backbone"])  # the group exists from epoch 1 on


def test_ckpt_path_last_resumes_in_the_same_run_dir(cli, tmp_path):
    run_dir = tmp_path / "run"
    cli("trainer.max_epochs=2", run_dir=run_dir).check()
    resumed = cli("trainer.max_epochs=3", "ckpt_path=last", run_dir=run_dir).check()
    assert resumed.metrics["epochs"] == 3
    assert len(scalars(run_dir)["val/acc"]) == 3  # one TensorBoard run, continued


def test_missing_ckpt_path_is_named(cli, tmp_path):
    result = cli(f"ckpt_path={tmp_path / 'nope.ckpt'}")
    assert result.returncode == 1 and f"{tmp_path / 'nope.ckpt'} does not exist" in result.stderr


def test_debug_trainer_runs_two_batches_end_to_end(cli):
    done = cli("trainer=debug").check()
    assert done.metrics["epochs"] == 1 and done.metrics["test/acc"] is not None
    checkpoint = torch.load(done.run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 2


def test_output_to_a_pipe_has_no_bar_a_run_summary_and_one_line_per_epoch(tmp_path):
    """With the progress bar left on, as a user's `python -m trainlab > log` runs it."""
    args = [sys.executable, "-m", "trainlab", "trainer.max_epochs=2", "trainer.limit_train_batches=3"]
    args += ["trainer.limit_val_batches=2", "test=false", f"hydra.run.dir={tmp_path / 'run'}"]
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert b"\r" not in output and b"\x1b" not in output  # no redraws, no cursor moves or colours
    text = output.decode()
    epochs = [line.split(" - ", 1)[1].split(" |")[0] for line in text.splitlines() if " - epoch " in line]
    assert epochs == ["epoch 1/2", "epoch 2/2"]
    assert "run: data=digits: train 1,439 / val 179 / test 179 images, 10 classes" in text
    assert "FLOPs" not in text and "hparams {" not in text
    # the hint to view the run is a command that works when pasted, the environment not activated
    program, flag, logdir = text.rsplit("view: ", 1)[1].split()
    assert Path(program).is_file() and flag == "--logdir" and Path(logdir).is_dir()
