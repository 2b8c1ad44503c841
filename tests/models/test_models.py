import pytest
import torch
from torch import nn

from trainlab.models.lenet import LeNet
from trainlab.models.resnet import cifar_resnet18
from trainlab.models.tudui import TutorialCNN


def test_tudui_is_the_tutorial_network_layer_for_layer():
    net = TutorialCNN()
    layers = [m for m in net.modules() if not isinstance(m, nn.Sequential | TutorialCNN)]
    expected = [
        (nn.Conv2d, (3, 32, (5, 5), (2, 2))),
        (nn.MaxPool2d, None),
        (nn.Conv2d, (32, 32, (5, 5), (2, 2))),
        (nn.MaxPool2d, None),
        (nn.Conv2d, (32, 64, (5, 5), (2, 2))),
        (nn.MaxPool2d, None),
        (nn.Flatten, None),
        (nn.Linear, (1024, 64)),
        (nn.Linear, (64, 10)),
    ]
    assert [type(m) for m in layers] == [t for t, _ in expected]
    for layer, (_, shape) in zip(layers, expected, strict=True):
        if isinstance(layer, nn.Conv2d):
            assert (layer.in_channels, layer.out_channels, layer.kernel_size, layer.padding) == shape
        elif isinstance(layer, nn.Linear):
            assert (layer.in_features, layer.out_features) == shape
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_tudui_adapts_to_channels_and_size():
    assert TutorialCNN(num_classes=4, in_channels=1, image_size=64)(torch.randn(1, 1, 64, 64)).shape == (1, 4)
    with pytest.raises(ValueError, match="image_size=4"):
        TutorialCNN(image_size=4)


def test_lenet_matches_the_rmb_tutorial():
    net = LeNet(num_classes=2)
    assert [n for n, _ in net.named_children()] == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert (net.conv1.out_channels, net.conv2.out_channels) == (6, 16)
    assert (net.fc1.in_features, net.fc1.out_features, net.fc2.out_features, net.fc3.out_features) == (
        400,
        120,
        84,
        2,
    )
    assert net(torch.randn(3, 3, 32, 32)).shape == (3, 2)


def test_lenet_initialize_weights_is_the_tutorials():
    torch.manual_seed(0)
    net = LeNet(num_classes=2)
    for layer in (net.fc1, net.fc2, net.fc3):
        assert abs(layer.weight.std().item() - 0.1) < 0.02 and torch.count_nonzero(layer.bias) == 0
    fan_in, fan_out = 16 * 25, 6 * 25
    xavier_std = (2 / (fan_in + fan_out)) ** 0.5
    assert abs(net.conv2.weight.std().item() - xavier_std) / xavier_std < 0.15
    assert torch.count_nonzero(net.conv1.bias) == 0


def test_resnet18_has_the_cifar_stem():
    net = cifar_resnet18(num_classes=10, in_channels=1)
    assert (
        net.conv1.kernel_size == (3, 3)
        and net.conv1.stride == (1, 1)
        and isinstance(net.maxpool, nn.Identity)
    )
    assert net(torch.randn(2, 1, 32, 32)).shape == (2, 10)
