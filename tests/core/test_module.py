import functools

import lightning.pytorch as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from modules import blobs, fit, make_module
from trainlab.core.metrics import ClassificationMetrics
from trainlab.core.module import ClassifierModule
from trainlab.errors import ConfigError
from trainlab.losses import ClassifierLoss
from trainlab.losses.sequence import CTCSequenceLoss


def test_trains_and_logs_the_documented_metric_names(tmp_path):
    L.seed_everything(0)
    trainer = fit(make_module(), tmp_path)
    metrics = trainer.callback_metrics
    for key in ("train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best", "lr/default"):
        assert key in metrics, key
    assert metrics["val/acc"] > 0.95 and metrics["train/loss"] < 0.3
    assert metrics["val/acc_best"] >= metrics["val/acc"]


def test_one_hot_losses_train_through_the_same_step(tmp_path):
    L.seed_everything(0)
    trainer = fit(make_module(target="one_hot", criterion=torch.nn.BCEWithLogitsLoss), tmp_path, epochs=8)
    assert trainer.callback_metrics["val/acc"] > 0.9


def test_scheduler_partial_is_completed_with_the_optimizer_and_steps(tmp_path):
    spec = {
        "scheduler": functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5),
        "interval": "epoch",
        "frequency": 1,
    }
    trainer = fit(make_module(scheduler=spec), tmp_path, epochs=3)
    assert trainer.optimizers[0].param_groups[0]["lr"] == 0.1 * 0.5**3
    assert trainer.lr_scheduler_configs[0].interval == "epoch"


def test_no_scheduler_returns_the_bare_optimizer():
    module = make_module(scheduler={"scheduler": None, "interval": "epoch"})
    assert isinstance(module.configure_optimizers(), torch.optim.SGD)


def test_val_acc_best_ignores_the_sanity_check_and_keeps_the_maximum(tmp_path):
    module = make_module()
    seen = []

    class Spy(L.Callback):
        def on_validation_end(self, trainer, pl_module):
            if not trainer.sanity_checking:
                seen.append(float(trainer.callback_metrics["val/acc"]))

    trainer = L.Trainer(
        max_epochs=3,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Spy()],
        default_root_dir=tmp_path,
    )
    trainer.fit(module, DataLoader(blobs(), batch_size=32), DataLoader(blobs(seed=1), batch_size=64))
    assert float(trainer.callback_metrics["val/acc_best"]) == max(seen)


def test_checkpoint_stores_the_run_config(tmp_path):
    trainer = fit(make_module(), tmp_path, epochs=1)
    trainer.save_checkpoint(tmp_path / "x.ckpt")
    checkpoint = torch.load(tmp_path / "x.ckpt", weights_only=True)
    assert checkpoint["trainlab_config"] == {"seed": 1}
    assert checkpoint["optimizer_states"] and checkpoint["state_dict"]


def test_each_param_group_trains_at_its_own_learning_rate(tmp_path):
    module = make_module()
    module.param_group_specs = [{"name": "frozen_by_lr", "params": r"^net\.0\.", "lr": 0.0}]
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    trainer = fit(module, tmp_path, epochs=2)
    groups = {g["name"]: g["lr"] for g in trainer.optimizers[0].param_groups}
    assert groups == {"frozen_by_lr": 0.0, "default": 0.1}
    after = dict(module.named_parameters())
    assert torch.equal(after["net.0.weight"], before["net.0.weight"])
    assert not torch.equal(after["net.2.weight"], before["net.2.weight"])
    assert {"lr/frozen_by_lr", "lr/default"} <= set(trainer.callback_metrics)


def test_flip_tta_averages_the_outputs_of_each_image_and_its_mirror():
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Flatten(), nn.LazyLinear(3))
    module = ClassifierModule(
        net=net,
        loss=ClassifierLoss(functools.partial(torch.nn.CrossEntropyLoss)),
        optimizer=functools.partial(torch.optim.SGD, lr=0.1),
        num_classes=3,
        tta="flip",
    )
    images = torch.randn(4, 1, 8, 8)
    expected = (net(images) + net(images.flip(-1))) / 2
    torch.testing.assert_close(module.eval_outputs(images), expected)
    assert not torch.allclose(expected, net(images))  # the mirror image scores differently
    module.tta = None
    torch.testing.assert_close(module.eval_outputs(images), net(images))


def test_flip_tta_is_refused_for_sequences():
    with pytest.raises(ConfigError, match="reverses a sequence's reading order"):
        ctc = CTCSequenceLoss(functools.partial(nn.CTCLoss, blank=2), num_classes=2)
        ClassifierModule(net=nn.Linear(2, 3), loss=ctc, optimizer=None, num_classes=2, tta="flip")


def make_module_with(**kwargs) -> ClassifierModule:
    return ClassifierModule(
        net=nn.Linear(2, 3),
        loss=ClassifierLoss(functools.partial(torch.nn.CrossEntropyLoss)),
        optimizer=functools.partial(torch.optim.SGD, lr=0.1),
        num_classes=3,
        **kwargs,
    )


LOGITS = ClassifierLoss(functools.partial(torch.nn.CrossEntropyLoss))  # class scores = the outputs


def scores_for(preds: list[int], num_classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(preds), num_classes).float()


def test_epoch_loss_and_accuracy_are_sample_weighted_and_keep_a_nan():
    metrics = ClassificationMetrics(num_classes=3)
    assert metrics.names == ("loss", "acc")  # top-5 of 3 classes is always right: not kept
    metrics.update(torch.tensor(1.0), LOGITS, scores_for([0, 1, 2], 3), torch.tensor([0, 1, 1]))
    metrics.update(torch.tensor(4.0), LOGITS, scores_for([2], 3), torch.tensor([2]))
    values = metrics.compute_and_reset()
    assert values["loss"] == pytest.approx((1.0 * 3 + 4.0) / 4) and values["acc"] == pytest.approx(3 / 4)
    metrics.update(torch.tensor(float("nan")), LOGITS, scores_for([0], 3), torch.tensor([0]))
    assert torch.isnan(metrics.compute_and_reset()["loss"])  # a NaN epoch shows, it is not averaged away


def test_top5_accuracy_counts_a_class_among_the_five_highest_scores_as_torchmetrics_does():
    from torchmetrics.functional.classification import multiclass_accuracy

    torch.manual_seed(0)
    scores, labels = torch.randn(50, 8), torch.randint(0, 8, (50,))
    metrics = ClassificationMetrics(num_classes=8)
    assert metrics.names == ("loss", "acc", "acc_top5")
    for part in (slice(0, 20), slice(20, 50)):
        metrics.update(torch.tensor(1.0), LOGITS, scores[part], labels[part])
    values = metrics.compute_and_reset()
    expected = multiclass_accuracy(scores, labels, num_classes=8, top_k=5, average="micro")
    assert values["acc_top5"] == pytest.approx(expected.item())
    assert values["acc"] == pytest.approx((scores.argmax(1) == labels).float().mean().item())
    assert 0 < values["acc"] < values["acc_top5"] < 1


def test_the_metric_names_it_declares_are_the_ones_it_logs(tmp_path):
    """Preflight checks monitors against metric_names(); they must be what fit and test really log."""
    module = make_module()
    trainer = fit(module, tmp_path, epochs=1)
    names = module.metric_names()
    assert set(names["epoch"]) | set(names["step"]) == set(trainer.callback_metrics)
    trainer.test(module, DataLoader(blobs(32), batch_size=16), verbose=False)
    assert set(names["test"]) <= set(trainer.callback_metrics)
