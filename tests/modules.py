"""A ClassifierModule on separable blobs, fitted for a few epochs: shared by the module, callback and
checkpoint tests."""

import functools

import lightning.pytorch as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainlab.core.module import ClassifierModule
from trainlab.losses import ClassifierLoss


def blobs(n: int = 256, seed: int = 0) -> TensorDataset:
    """Three well-separated Gaussian blobs in 2-D."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    centres = torch.tensor([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])
    return TensorDataset(centres[labels] + 0.5 * torch.randn(n, 2, generator=g), labels)


def make_module(scheduler=None, target="index", criterion=torch.nn.CrossEntropyLoss) -> ClassifierModule:
    return ClassifierModule(
        net=nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3)),
        loss=ClassifierLoss(functools.partial(criterion), target=target),
        optimizer=functools.partial(torch.optim.SGD, lr=0.1),
        num_classes=3,
        scheduler=scheduler,
        config={"seed": 1},
    )


def fit(module: ClassifierModule, tmp_path, epochs: int = 5, callbacks=(), ckpt_path=None) -> L.Trainer:
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        log_every_n_steps=1,  # step values (lr/<group>) are logged at the logging cadence only
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
        default_root_dir=tmp_path,
    )
    train = DataLoader(blobs(), batch_size=32, shuffle=True)
    trainer.fit(module, train, DataLoader(blobs(seed=1), batch_size=64), ckpt_path=ckpt_path)
    return trainer
