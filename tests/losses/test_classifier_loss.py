import functools

import pytest
import torch
import torch.nn.functional as F

from trainlab.errors import ConfigError
from trainlab.losses import ClassifierLoss

LOGITS = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0], [1.0, 1.0, 0.0]])
LABELS = torch.tensor([0, 2, 1])


def test_ce_is_cross_entropy_on_logits_and_indices():
    loss = ClassifierLoss(functools.partial(torch.nn.CrossEntropyLoss), input="logits", target="index")
    assert torch.allclose(loss(LOGITS, LABELS), F.cross_entropy(LOGITS, LABELS))
    assert loss.predict(LOGITS).tolist() == [0, 2, 0]


def test_bce_logits_uses_one_hot_float_targets():
    loss = ClassifierLoss(functools.partial(torch.nn.BCEWithLogitsLoss), target="one_hot")
    expected = F.binary_cross_entropy_with_logits(LOGITS, F.one_hot(LABELS, 3).float())
    assert torch.allclose(loss(LOGITS, LABELS), expected)


def test_list_arguments_from_yaml_become_tensors_that_follow_the_module():
    loss = ClassifierLoss(functools.partial(torch.nn.CrossEntropyLoss, weight=[1.0, 2.0, 3.0]))
    assert torch.equal(loss.criterion.weight, torch.tensor([1.0, 2.0, 3.0]))
    assert "criterion.weight" in dict(loss.named_buffers())
    expected = F.cross_entropy(LOGITS, LABELS, weight=torch.tensor([1.0, 2.0, 3.0]))
    assert torch.allclose(loss(LOGITS, LABELS), expected)


def test_reduction_none_is_averaged_for_backprop():
    loss = ClassifierLoss(functools.partial(torch.nn.CrossEntropyLoss, reduction="none"))
    assert torch.allclose(loss(LOGITS, LABELS), F.cross_entropy(LOGITS, LABELS))


def test_unknown_forms_list_the_choices():
    with pytest.raises(ConfigError, match=r"loss\.target='onehot'.*one_hot"):
        ClassifierLoss(functools.partial(torch.nn.CrossEntropyLoss), target="onehot")
    with pytest.raises(ConfigError, match=r"loss\.input='probability'.*log_probs"):
        ClassifierLoss(functools.partial(torch.nn.CrossEntropyLoss), input="probability")
