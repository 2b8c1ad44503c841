"""The prediction grid: every class's first image before any class's second, and the most confident
mistake, picked from the outputs validation computes anyway."""

from __future__ import annotations

import functools

import lightning.pytorch as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainlab.callbacks.figures import RunFigures
from trainlab.core.module import ClassifierModule
from trainlab.losses import ClassifierLoss


def ten_classes(n: int = 200) -> TensorDataset:
    """Tiny 1x4x4 'images'; the labels follow the sample index (0..9 repeating), the first 60 are class 0
    so that the first batches hold only that class."""
    torch.manual_seed(0)
    labels = torch.cat([torch.zeros(60, dtype=torch.long), torch.arange(n - 60) % 10])
    return TensorDataset(torch.randn(n, 1, 4, 4), labels)


def test_the_grid_shows_every_class_and_the_most_confident_mistake(tmp_path):
    module = ClassifierModule(
        net=nn.Sequential(nn.Flatten(), nn.Linear(16, 10)),
        loss=ClassifierLoss(functools.partial(nn.CrossEntropyLoss)),
        optimizer=functools.partial(torch.optim.SGD, lr=0.1),
        num_classes=10,
        class_names=[f"c{i}" for i in range(10)],
    )
    figures = RunFigures(output_dir=str(tmp_path), num_samples=16)
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[figures],
    )
    data = ten_classes()
    trainer.fit(module, DataLoader(data, batch_size=20), DataLoader(data, batch_size=20))
    samples = figures._samples
    labels, notes = samples["labels"], samples["notes"]
    assert len(labels) == 16 and labels[:10] == [f"c{i}" for i in range(10)]  # every class first
    assert labels[10:15] == [f"c{i}" for i in range(5)]  # then the second round, as room allows
    assert notes[-1] == "most confident mistake" and notes[:-1] == [""] * 15
    assert samples["predicted"][-1] != labels[-1]
    # no wrong prediction in the whole validation had a higher probability than the one shown
    with torch.no_grad():
        probabilities = module.eval_outputs(data.tensors[0]).softmax(dim=1)
    confidence, predicted = probabilities.max(dim=1)
    wrong = confidence[predicted != data.tensors[1]]
    assert samples["probability"][-1] == pytest.approx(float(wrong.max()), rel=1e-5)
    assert (tmp_path / "predictions.png").stat().st_size > 10_000
