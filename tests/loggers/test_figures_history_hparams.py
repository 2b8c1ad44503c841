"""The run's curves history, the figures drawn from it, and the HPARAMS row."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from trainlab.loggers.hparams import HPARAM_METRICS, run_hparams
from trainlab.loggers.plots import (
    confusion_matrix_figure,
    curves_figure,
    prediction_grid_figure,
    save_figure,
)
from trainlab.records.history import MetricHistory


def filled_history() -> MetricHistory:
    history = MetricHistory()
    for epoch in range(3):
        for step in range(epoch * 10, epoch * 10 + 10, 5):
            history.add_step(step, torch.tensor(2.0 - 0.1 * step))
        end = epoch * 10 + 9
        history.add_epoch(
            "train", epoch, end, torch.tensor(1.5 - epoch * 0.5), torch.tensor(0.5 + epoch * 0.1)
        )
        history.add_epoch("val", epoch, end, torch.tensor(1.4 - epoch * 0.4), torch.tensor(0.6 + epoch * 0.1))
    return history


def test_history_keeps_epochs_and_steps_and_round_trips_through_a_state_dict():
    history = filled_history()
    state = history.state_dict()
    assert [row["epoch"] for row in state["epochs"]["val"]] == [0, 1, 2]
    assert state["steps"][:2] == [(0, 2.0), (5, 1.5)] and len(state["steps"]) == 6
    assert all(isinstance(v, float) for row in state["epochs"]["train"] for v in (row["loss"], row["acc"]))
    restored = MetricHistory()
    restored.load_state_dict(state)
    assert restored.state_dict() == state


def test_history_replaces_an_epoch_recorded_again():
    """A run resumed from a mid-epoch checkpoint finishes that epoch again: one row per epoch."""
    history = filled_history()
    history.add_epoch("val", 2, 40, torch.tensor(0.1), torch.tensor(0.99))
    rows = history.epochs["val"]
    assert [row["epoch"] for row in rows] == [0, 1, 2] and rows[-1]["acc"] == pytest.approx(0.99)


def test_figures_are_written_as_png_files(tmp_path):
    save_figure(curves_figure(filled_history()), tmp_path / "curves.png")
    matrix = torch.tensor([[5, 1, 0], [0, 6, 0], [2, 0, 4]])
    save_figure(confusion_matrix_figure(matrix, ["a", "b", "c"], "val"), tmp_path / "cm.png")
    images = torch.rand(5, 3, 16, 16) * 4 - 2  # normalized pixels outside [0, 1]
    grey = torch.rand(3, 1, 8, 8)
    save_figure(
        prediction_grid_figure(images, ["a"] * 5, ["a", "b"] * 2 + ["c"], [0.9] * 5, "p"), tmp_path / "g.png"
    )
    save_figure(prediction_grid_figure(grey, ["x"] * 3, ["x"] * 3, [1.0] * 3, "grey"), tmp_path / "g1.png")
    for name in ("curves.png", "cm.png", "g.png", "g1.png"):
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and image.width > 200
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cm.png", "curves.png", "g.png", "g1.png"]


def test_confusion_matrix_title_states_the_accuracy_of_the_matrix():
    figure = confusion_matrix_figure(torch.tensor([[3, 1], [0, 4]]), ["1", "100"], "test")
    assert "accuracy 0.8750, 8 samples" in figure.axes[0].get_title()
    texts = sorted(t.get_text() for t in figure.axes[0].texts)
    assert texts == ["0", "1", "3", "4"]


def test_an_empty_history_still_draws(tmp_path):
    """A run stopped before its first epoch ended still gets a (blank) curves.png."""
    save_figure(curves_figure(MetricHistory()), tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_hparams_name_the_chosen_groups_and_their_scalar_options():
    config = {
        "data": {"_target_": "trainlab.data.digits.DigitsDataModule", "batch_size": 64, "image_size": 32},
        "model": {"_target_": "trainlab.models.tudui.TutorialCNN", "num_classes": 10},
        "loss": {
            "_target_": "x.ClassifierLoss",
            "criterion": {"_target_": "torch.nn.CrossEntropyLoss", "label_smoothing": 0.1, "weight": None},
            "input": "logits",
        },
        "optim": {
            "_target_": "torch.optim.SGD",
            "_partial_": True,
            "lr": 0.05,
            "momentum": 0.9,
            "nesterov": True,
            "betas": [0.9, 0.99],
            "param_groups": [{"name": "x"}],
            "no_decay": False,
        },
        "scheduler": None,
        "trainer": {"max_epochs": 3, "precision": "32-true"},
        "seed": 7,
    }
    hparams = run_hparams(config, {"data": "digits", "optim": "sgd", "loss": "ce"})
    assert hparams["data"] == "digits" and hparams["optim"] == "sgd" and hparams["loss"] == "ce"
    assert hparams["model"] == "TutorialCNN" and hparams["scheduler"] == "none"  # no choice known: class name
    assert (
        hparams["optim.lr"] == 0.05 and hparams["optim.momentum"] == 0.9 and hparams["optim.nesterov"] is True
    )
    assert hparams["optim.betas"] == "[0.9, 0.99]"  # TensorBoard takes scalars and strings only
    assert hparams["loss.criterion.label_smoothing"] == 0.1 and hparams["loss.input"] == "logits"
    assert "loss.criterion.weight" not in hparams and "optim.param_groups" not in hparams
    assert not any(key.endswith(("_target_", "_partial_")) for key in hparams)
    assert hparams["data.batch_size"] == 64 and hparams["trainer.max_epochs"] == 3 and hparams["seed"] == 7
    assert all(isinstance(v, bool | int | float | str) for v in hparams.values())
    assert HPARAM_METRICS == ("val/acc_best", "val/loss", "test/acc")
    # what the command line (a sweep) sets comes first, as HPARAMS' first columns; hydra.* is no hparam
    swept = run_hparams(
        config,
        {"data": "digits", "optim": "sgd", "loss": "ce"},
        ["optim=sgd", "+optim.lr=0.05", "hydra.run.dir=/x", "trainer.max_epochs=3", "callbacks=watch"],
    )
    assert list(swept)[:4] == ["optim", "optim.lr", "trainer.max_epochs", "callbacks"]
    assert swept["callbacks"] == "watch"  # a group the table has no column for: the option's name
    assert {k: v for k, v in swept.items() if k != "callbacks"} == hparams  # the same values, reordered
