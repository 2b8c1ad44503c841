"""The rehearsal step: every shipped loss told its forms, the run left exactly as it was."""

from __future__ import annotations

import functools
from pathlib import Path

import lightning.pytorch as L
import pytest
import torch
from lightning.pytorch.plugins.precision import Precision
from omegaconf import OmegaConf
from torch import nn

import trainlab.conf
from configs import options
from trainlab.core.build import build
from trainlab.core.module import ClassifierModule
from trainlab.data.digits import DigitsDataModule
from trainlab.errors import ConfigError
from trainlab.losses import ClassifierLoss
from trainlab.losses.targets import TARGET_FORMS
from trainlab.training.preflight.rehearsal import rehearse, shipped_forms, step

LOSS_DIR = Path(trainlab.conf.__file__).parent / "loss"
FORM_LOSSES = [name for name in options("loss") if "target" in OmegaConf.load(LOSS_DIR / f"{name}.yaml")]


def module_with(loss: nn.Module) -> ClassifierModule:
    return ClassifierModule(
        net=nn.Sequential(nn.Flatten(), nn.Linear(4, 10)),
        loss=loss,
        optimizer=functools.partial(torch.optim.SGD, lr=0.1),
        num_classes=10,
    )


def shipped_loss(name: str, **changes) -> ClassifierLoss:
    node = OmegaConf.merge(OmegaConf.load(LOSS_DIR / f"{name}.yaml"), changes)
    return build("loss", node, num_classes=10, class_counts=[8] * 10)


@pytest.mark.parametrize("name", FORM_LOSSES)
def test_every_loss_with_a_wrong_target_form_is_told_the_form_it_ships_with(name):
    images, labels = torch.randn(8, 1, 2, 2), torch.arange(8) % 10
    shipped = shipped_forms(name)
    loss = shipped_loss(name)
    assert loss.input_advice() is None  # the shipped forms are the criterion's own
    step(module_with(loss), "train", images, labels, Precision())  # the shipped config runs
    fitting = loss.forms_that_fit(torch.randn(8, 10), labels)
    assert shipped in fitting
    wrong = next((t for t in TARGET_FORMS if (shipped[0], t) not in fitting), None)
    if wrong is None:
        pytest.skip(f"{name} takes every target form")
    with pytest.raises(ConfigError) as raised:
        step(module_with(shipped_loss(name, target=wrong)), "train", images, labels, Precision(), name)
    text = str(raised.value)
    assert f"(loss.input={shipped[0]}, loss.target={wrong})" in text
    assert (
        f"It takes loss.input={shipped[0]} loss.target={shipped[1]}, as conf/loss/{name}.yaml ships it"
        in text
    )


@pytest.mark.parametrize(
    ("name", "form", "advice"),
    [
        ("ce", "probs", "CrossEntropyLoss applies log-softmax to its input itself"),
        ("nll", "logits", "NLLLoss expects log-probabilities"),
        ("bce_logits", "sigmoid", "BCEWithLogitsLoss applies a sigmoid to its input itself"),
        ("kl_div", "probs", "KLDivLoss expects log-probabilities"),
    ],
)
def test_an_input_form_the_criterion_is_not_made_for_is_pointed_out(name, form, advice):
    text = shipped_loss(name, input=form).input_advice()
    assert text is not None and text.startswith(f"loss.input={form}: {advice}")


def test_rehearsal_leaves_weights_statistics_gradients_and_random_state_as_they_were():
    dm = DigitsDataModule(batch_size=16, in_channels=1)
    dm.setup("fit")
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.Flatten(), nn.LazyLinear(10)
    )
    module = module_with(shipped_loss("ce"))
    module.net = net
    net(torch.zeros(1, 1, 32, 32))  # materialize the lazy layer
    before = {k: v.clone() for k, v in module.state_dict().items()}
    rng = torch.get_rng_state()
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    rehearse(module, dm, trainer)
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())  # BatchNorm stats too
    assert all(p.grad is None for p in module.parameters())
    assert torch.equal(torch.get_rng_state(), rng)


def test_a_network_that_cannot_take_the_images_names_the_data_keys():
    dm = DigitsDataModule(batch_size=16, in_channels=1)
    dm.setup("fit")
    module = module_with(shipped_loss("ce"))  # Linear(4, 10) on 32x32 images
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    with pytest.raises(
        ConfigError, match=r"cannot take the train images .* a batch of shape \(8, 1, 32, 32\)"
    ):
        rehearse(module, dm, trainer)
