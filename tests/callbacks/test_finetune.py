import pytest
import torch

from modules import fit as fit_module
from modules import make_module
from trainlab.callbacks.finetune import UnfreezeBackbone
from trainlab.errors import ConfigError


def fit(module, callback, epochs, tmp_path):
    return fit_module(module, tmp_path, epochs=epochs, callbacks=[callback])


def test_backbone_is_frozen_then_added_as_its_own_group(tmp_path, caplog):
    caplog.set_level("INFO", logger="trainlab.callbacks.finetune")
    torch.manual_seed(0)
    module = make_module(scheduler={"scheduler": None})
    initial = module.net[0].weight.detach().clone()
    callback = UnfreezeBackbone(backbone=r"net\.0", unfreeze_at_epoch=1, lr_scale=0.5)
    trainer = fit(module, callback, 1, tmp_path)
    assert torch.equal(module.net[0].weight, initial)  # frozen in epoch 0
    assert [g["name"] for g in trainer.optimizers[0].param_groups] == ["default"]

    torch.manual_seed(0)
    module = make_module(scheduler={"scheduler": None})
    trainer = fit(
        module, UnfreezeBackbone(backbone=r"net\.0", unfreeze_at_epoch=1, lr_scale=0.5), 3, tmp_path
    )
    groups = {g["name"]: g for g in trainer.optimizers[0].param_groups}
    assert set(groups) == {"default", "backbone"} and groups["backbone"]["lr"] == pytest.approx(0.05)
    assert not torch.equal(module.net[0].weight, initial)
    assert trainer.callback_metrics["lr/backbone"] == pytest.approx(0.05)
    said = [r.getMessage() for r in caplog.records if r.name == "trainlab.callbacks.finetune"]
    assert said[-2:] == [
        "finetune: net\\.0 frozen (48 parameters) until epoch 2, when it joins the optimizer as param "
        "group 'backbone'",
        "finetune: epoch 2: net\\.0 unfrozen, training as param group 'backbone' at lr 0.05 (48 parameters)",
    ]


def test_the_new_group_is_scheduled_too(tmp_path):
    import functools

    spec = {
        "scheduler": functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5),
        "interval": "epoch",
    }
    module = make_module(scheduler=spec)
    trainer = fit(module, UnfreezeBackbone(backbone=r"net\.0", unfreeze_at_epoch=1, lr=0.04), 3, tmp_path)
    groups = {g["name"]: g["lr"] for g in trainer.optimizers[0].param_groups}
    assert groups["backbone"] == pytest.approx(0.04 * 0.5**2) and groups["default"] == pytest.approx(
        0.1 * 0.5**3
    )


def test_a_pattern_matching_no_module_names_the_modules(tmp_path):
    with pytest.raises(ConfigError, match=r"matches no module.*net"):
        fit(make_module(), UnfreezeBackbone(backbone="backbone"), 1, tmp_path)
