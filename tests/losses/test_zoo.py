"""Every loss config in conf/loss/, tested without per-loss test code (a new YAML is picked up here)."""

import pytest
import torch

from configs import compose_train
from trainlab.core.build import build, shipped_options_for
from trainlab.losses import LossAdapter

NUM_CLASSES = 10
CLASSIFICATION_LOSSES = shipped_options_for("loss", "classification")  # ctc: tests/losses/test_sequence.py
COUNTS = [30, 10, 20, 20, 20, 20, 20, 20, 20, 20]


def make(tmp_path, name: str, *overrides: str) -> LossAdapter:
    cfg = compose_train(tmp_path, f"loss={name}", *overrides)
    return build("loss", cfg.loss, num_classes=NUM_CLASSES, class_counts=COUNTS)


def batch(seed: int = 0, n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % NUM_CLASSES
    return torch.randn(n, NUM_CLASSES, generator=g, requires_grad=True), labels


@pytest.mark.parametrize("name", CLASSIFICATION_LOSSES)
def test_finite_scalar_with_gradients_to_outputs_and_loss_parameters(tmp_path, name):
    loss = make(tmp_path, name)
    assert isinstance(loss, LossAdapter) and loss.task == "classification"
    outputs, labels = batch()
    value = loss(outputs, labels)
    assert value.ndim == 0 and torch.isfinite(value)
    value.backward()
    assert outputs.grad is not None and outputs.grad.abs().sum() > 0
    for pname, param in loss.named_parameters():
        assert param.grad is not None, f"{name}: {pname} gets no gradient"


@pytest.mark.parametrize("name", CLASSIFICATION_LOSSES)
def test_predict_decodes_one_class_index_per_sample(tmp_path, name):
    loss = make(tmp_path, name)
    outputs, labels = batch()
    loss(outputs, labels)  # the triplet loss learns its class means while training
    predicted = loss.predict(outputs.detach())
    assert predicted.shape == labels.shape and predicted.dtype == torch.int64
    assert predicted.min() >= 0 and predicted.max() < NUM_CLASSES


@pytest.mark.parametrize("name", CLASSIFICATION_LOSSES)
def test_probabilities_are_a_distribution_whose_argmax_is_the_prediction(tmp_path, name):
    """trainlab.predict and the prediction grids report these; they must agree with accuracy's class."""
    loss = make(tmp_path, name)
    outputs, labels = batch(n=40)
    loss(outputs, labels)
    loss.eval()
    probabilities = loss.probabilities(outputs.detach())
    assert probabilities.shape == (40, NUM_CLASSES) and (probabilities >= 0).all()
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(40), atol=1e-5)
    assert torch.equal(probabilities.argmax(dim=1), loss.predict(outputs.detach()))


@pytest.mark.parametrize("name", CLASSIFICATION_LOSSES)
def test_a_few_steps_on_separable_outputs_raise_accuracy(tmp_path, name):
    """Optimizing the outputs directly: every loss must move predictions towards the labels."""
    torch.manual_seed(0)
    loss = make(tmp_path, name)
    labels = torch.arange(60) % NUM_CLASSES
    outputs = torch.randn(60, NUM_CLASSES).mul(0.1).requires_grad_(True)
    optimizer = torch.optim.Adam([outputs, *loss.parameters()], lr=0.05)
    for _ in range(300):
        optimizer.zero_grad()
        loss(outputs, labels).backward()
        optimizer.step()
    loss.eval()
    assert (loss.predict(outputs.detach()) == labels).float().mean() >= 0.9


@pytest.mark.parametrize("name", [n for n in CLASSIFICATION_LOSSES if n not in ("kl_div",)])
def test_reduction_none_gives_one_row_per_sample(tmp_path, name):
    loss = make(tmp_path, name, "loss.criterion.reduction=none")
    outputs, labels = batch()
    value = loss(outputs, labels)
    assert value.ndim >= 1
    if name != "triplet_margin":  # one value per mined triplet instead
        assert value.shape[0] == len(labels)
    value.mean().backward()
