"""callbacks=watch: per-layer norms equal a direct computation; dead and non-finite layers are named."""

from __future__ import annotations

import copy
import functools
import logging

import lightning.pytorch as L
import pytest
import torch
from lightning.pytorch.loggers import Logger
from torch import nn
from torch.utils.data import DataLoader

from modules import blobs, make_module
from trainlab.callbacks.watch import WatchLayers
from trainlab.core.module import ClassifierModule
from trainlab.errors import TrainlabError
from trainlab.losses import ClassifierLoss


class Recorder(Logger):
    """Keeps what the loggers are given: [(step, {tag: value})]."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[int, dict[str, float]]] = []

    name = "recorder"
    version = 0

    def log_hyperparams(self, *args, **kwargs) -> None:
        pass

    def log_metrics(self, metrics, step=None) -> None:
        self.rows.append((step, dict(metrics)))


def fit(module, steps=None, epochs=1, log_every=1, callbacks=()):
    recorder = Recorder()
    trainer = L.Trainer(
        max_epochs=epochs,
        max_steps=steps or -1,
        accelerator="cpu",
        logger=recorder,
        log_every_n_steps=log_every,
        callbacks=[WatchLayers(), *callbacks],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    trainer.fit(module, DataLoader(blobs(64), batch_size=16))
    watched = {}
    for _, metrics in recorder.rows:
        watched.update({k: v for k, v in metrics.items() if k.startswith("watch/")})
    return watched


def first_step_by_hand(module: ClassifierModule, optimizer_factory):
    """Gradient norms and the update of one optimizer step on the first batch, without Lightning."""
    net = copy.deepcopy(module.net)
    images, labels = next(iter(DataLoader(blobs(64), batch_size=16)))
    module.loss(net(images), labels).backward()
    raw = {name: p.grad.detach().clone() for name, p in net.named_parameters()}
    grads = {name: g.norm().item() for name, g in raw.items()}
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    optimizer_factory(net.parameters()).step()
    after = dict(net.named_parameters())
    updates = {name: (after[name].detach() - before[name]).norm().item() for name in before}
    weights = {name: after[name].norm().item() for name in before}
    return grads, updates, weights, raw


@pytest.mark.parametrize(
    "factory",
    [functools.partial(torch.optim.SGD, lr=0.1), functools.partial(torch.optim.Adam, lr=0.01)],
    ids=["sgd", "adam"],
)
def test_norms_and_update_ratios_equal_a_direct_computation(factory):
    torch.manual_seed(0)
    module = make_module()
    module.optimizer_factory = factory
    grads, updates, weights, raw = first_step_by_hand(module, factory)
    watched = fit(module, steps=1)
    for name in grads:
        tag = f"net.{name}"
        assert watched[f"watch/grad_norm/{tag}"] == pytest.approx(grads[name], rel=1e-5)
        assert watched[f"watch/update_norm/{tag}"] == pytest.approx(updates[name], rel=1e-4)
        assert watched[f"watch/update_ratio/{tag}"] == pytest.approx(updates[name] / weights[name], rel=1e-4)
        if isinstance(factory.func, type) and factory.func is torch.optim.SGD:
            # plain SGD: the update is lr x gradient
            assert watched[f"watch/update_norm/{tag}"] == pytest.approx(0.1 * grads[name], rel=1e-4)
        else:  # Adam keeps both moments per parameter: after one step exp_avg = (1 - beta1) g
            assert watched[f"watch/state_exp_avg/{tag}"] == pytest.approx(0.1 * grads[name], rel=1e-4)
            assert f"watch/state_exp_avg_sq/{tag}" in watched
            # bias-corrected v after one step is g^2: the effective step size is lr / (|g| + eps)
            expected = (0.01 / (raw[name].abs() + 1e-8)).median().item()
            assert watched[f"watch/adam_step_size/{tag}"] == pytest.approx(expected, rel=1e-4)


class ZeroedFirstLayer(nn.Module):
    """Linear -> x0 -> Linear: the first layer gets no gradient at all."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(2, 16)
        self.second = nn.Linear(16, 3)

    def forward(self, x):
        return self.second(self.first(x) * 0)


def module_with(net: nn.Module) -> ClassifierModule:
    return ClassifierModule(
        net=net,
        loss=ClassifierLoss(functools.partial(nn.CrossEntropyLoss)),
        optimizer=functools.partial(torch.optim.SGD, lr=0.1),
        num_classes=3,
    )


def watch_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "trainlab.callbacks.watch"]


def test_a_layer_without_gradient_for_a_whole_epoch_is_named_once(caplog):
    caplog.set_level(logging.WARNING, logger="trainlab.callbacks.watch")
    torch.manual_seed(0)
    fit(module_with(ZeroedFirstLayer()), epochs=2, log_every=50)
    (line,) = watch_warnings(caplog)
    assert (
        "zero gradient for the whole of epoch 1 in net.first.weight, net.first.bias, net.second.weight"
        in line
    )
    assert "net.second.bias" not in line


def test_a_healthy_net_gives_no_warning(caplog):
    caplog.set_level(logging.WARNING, logger="trainlab.callbacks.watch")
    torch.manual_seed(0)
    fit(make_module(), epochs=2, log_every=50)
    assert watch_warnings(caplog) == []


def test_the_first_layer_whose_gradient_goes_non_finite_is_named_before_the_nan_guard_stops(caplog):
    caplog.set_level(logging.WARNING, logger="trainlab.callbacks.watch")
    torch.manual_seed(0)
    module = make_module()
    target = module.net[2].weight
    steps = []

    def blow_up_at_step_two(grad):
        steps.append(1)
        return grad * float("inf") if len(steps) == 3 else grad

    target.register_hook(blow_up_at_step_two)
    with pytest.raises(TrainlabError, match="loss"):
        fit(module, epochs=2, log_every=50)
    (line,) = watch_warnings(caplog)
    assert line.startswith(
        "watch: the gradient of net.2.weight went non-finite (NaN or Inf) first, at optimizer step 2"
    )


def test_tensorboard_gets_one_chart_per_quantity_with_every_layer(tmp_path):
    """The run's layout (the module's metrics and the watch charts) names tags the run really logs."""
    import re

    from lightning.pytorch.loggers import TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.custom_scalar import layout_pb2

    from trainlab.loggers.tensorboard import metric_charts, write_chart_layout

    torch.manual_seed(0)
    watch = WatchLayers()
    module = make_module()
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=TensorBoardLogger(tmp_path, name="tb", version=""),
        log_every_n_steps=1,
        callbacks=[watch],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    write_chart_layout(trainer, metric_charts(module.metric_names()), watch.tensorboard_charts())
    loader = DataLoader(blobs(64), batch_size=16)
    trainer.fit(module, loader, loader)
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    (config,) = events.Tensors("custom_scalars__config__")
    layout = layout_pb2.Layout.FromString(config.tensor_proto.string_val[0])
    charts = {
        (category.title, chart.title): list(chart.multiline.tag)
        for category in layout.category
        for chart in category.chart
    }
    assert charts[("trainlab", "loss")] == ["^train/loss$", "^val/loss$", "^test/loss$"]
    assert charts[("trainlab", "acc")] == ["^train/acc$", "^val/acc$", "^val/acc_best$", "^test/acc$"]
    assert charts[("watch", "update_ratio")] == ["^watch/update_ratio/"]
    tags = events.Tags()["scalars"]
    for (category, title), regexes in charts.items():
        if title in ("adam_step_size", "optimizer state"):
            continue  # plain SGD keeps no per-parameter state
        matched = [tag for tag in tags if any(re.search(r, tag) for r in regexes)]
        assert matched, (category, title, regexes)
