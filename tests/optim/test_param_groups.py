import pytest
import torch
from torch import nn

from trainlab.errors import ConfigError
from trainlab.models.tudui import TutorialCNN
from trainlab.optim.param_groups import build_param_groups


class Wrapper(nn.Module):
    """Names as inside the LightningModule: net.features..., net.classifier..."""

    def __init__(self) -> None:
        super().__init__()
        self.net = TutorialCNN(num_classes=10, in_channels=1)


def names_by_group(model: nn.Module, groups: list[dict]) -> dict[str, set[str]]:
    ids = {id(p): n for n, p in model.named_parameters()}
    return {g["name"]: {ids[id(p)] for p in g["params"]} for g in groups}


def test_first_match_wins_and_the_rest_is_default():
    model = Wrapper()
    specs = [
        {"name": "head", "params": r"classifier\.1\.", "lr": 0.5},
        {"name": "classifier", "params": r"^net\.classifier\.", "lr_scale": 0.1, "weight_decay": 0.0},
    ]
    groups = build_param_groups(model.named_parameters(), specs, base_lr=0.01)
    members = names_by_group(model, groups)
    assert members["head"] == {"net.classifier.1.weight", "net.classifier.1.bias"}
    assert members["classifier"] == {"net.classifier.0.weight", "net.classifier.0.bias"}
    assert all(n.startswith("net.features.") for n in members["default"])
    every = [n for g in members.values() for n in g]
    assert sorted(every) == sorted(n for n, _ in model.named_parameters())  # each exactly once
    options = {g["name"]: g for g in groups}
    assert options["head"]["lr"] == 0.5 and options["classifier"]["lr"] == pytest.approx(0.001)
    assert options["classifier"]["weight_decay"] == 0.0 and "lr" not in options["default"]


def test_torch_takes_the_groups_with_their_own_options():
    model = Wrapper()
    groups = build_param_groups(
        model.named_parameters(), [{"name": "features", "params": "features", "lr": 0.1}]
    )
    optimizer = torch.optim.SGD(groups, lr=0.01, momentum=0.9)
    by_name = {g["name"]: g for g in optimizer.param_groups}
    assert by_name["features"]["lr"] == 0.1 and by_name["default"]["lr"] == 0.01
    assert by_name["features"]["momentum"] == 0.9


def test_no_decay_splits_biases_into_a_zero_decay_sibling():
    model = Wrapper()
    groups = build_param_groups(model.named_parameters(), no_decay=True)
    members = names_by_group(model, groups)
    assert set(members) == {"default", "default_no_decay"}
    assert all(n.endswith(".bias") for n in members["default_no_decay"])
    assert all(n.endswith(".weight") for n in members["default"])
    assert next(g for g in groups if g["name"] == "default_no_decay")["weight_decay"] == 0.0


def test_frozen_parameters_are_left_out():
    model = Wrapper()
    for p in model.net.features.parameters():
        p.requires_grad_(False)
    members = names_by_group(model, build_param_groups(model.named_parameters()))
    assert all(n.startswith("net.classifier") for n in members["default"])


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ([{"name": "x", "params": "^nothing"}], "group 'x' .* matches no trainable parameter"),
        ([{"name": "a", "params": "net"}, {"name": "b", "params": "features"}], "group 'b'"),
        ([{"name": "x"}], "has no 'params' regex"),
        ([{"params": "(unclosed"}], "is not a valid regex"),
        ([{"params": "features", "lr": 0.1, "lr_scale": 2}], "both lr and lr_scale"),
        ([{"name": "default", "params": "features"}], "kept for unmatched parameters"),
    ],
)
def test_bad_group_specs_are_named(specs, message):
    with pytest.raises(ConfigError, match=message):
        build_param_groups(Wrapper().named_parameters(), specs, base_lr=0.01)
