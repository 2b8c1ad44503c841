import functools

import pytest
import torch

from trainlab.errors import ConfigError
from trainlab.optim.schedulers import ExpressionLR, build_scheduler


def sgd(lr: float = 1.0) -> torch.optim.SGD:
    return torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=lr, momentum=0.9)


def lr_curve(optimizer, scheduler, steps: int) -> list[float]:
    curve = [optimizer.param_groups[0]["lr"]]
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
        curve.append(optimizer.param_groups[0]["lr"])
    return curve


def test_warmup_in_front_of_any_scheduler():
    optimizer = sgd()
    spec = {
        "scheduler": functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5),
        "interval": "epoch",
        "warmup": 2,
        "warmup_start_factor": 0.1,
    }
    config = build_scheduler(spec, optimizer, total_steps=None)
    assert isinstance(config["scheduler"], torch.optim.lr_scheduler.SequentialLR)
    assert lr_curve(optimizer, config["scheduler"], 4) == pytest.approx([0.1, 0.55, 1.0, 0.5, 0.25])


def test_warmup_alone_ramps_then_holds():
    optimizer = sgd()
    config = build_scheduler({"scheduler": None, "warmup": 2, "warmup_start_factor": 0.5}, optimizer, None)
    assert lr_curve(optimizer, config["scheduler"], 3) == pytest.approx([0.5, 0.75, 1.0, 1.0])


def test_onecycle_total_steps_come_from_the_trainer():
    optimizer = sgd(0.1)
    factory = functools.partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=0.1, total_steps=None)
    config = build_scheduler({"scheduler": factory, "interval": "step"}, optimizer, total_steps=40)
    assert config["scheduler"].total_steps == 40 and config["interval"] == "step"
    with pytest.raises(ConfigError, match="total_steps is null"):
        build_scheduler({"scheduler": factory}, sgd(), total_steps=None)


def test_plateau_keeps_its_monitor_and_refuses_warmup():
    factory = functools.partial(torch.optim.lr_scheduler.ReduceLROnPlateau, patience=0)
    config = build_scheduler({"scheduler": factory, "monitor": "val/loss", "interval": "epoch"}, sgd(), None)
    assert config["monitor"] == "val/loss"
    with pytest.raises(ConfigError, match="cannot precede plateau"):
        build_scheduler({"scheduler": factory, "warmup": 1}, sgd(), None)


def test_bad_interval_is_named():
    with pytest.raises(ConfigError, match=r"scheduler\.interval='batch'"):
        build_scheduler(
            {
                "scheduler": functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1),
                "interval": "batch",
            },
            sgd(),
            None,
        )


def test_expression_lr_follows_the_formula_and_survives_a_state_dict_round_trip():
    optimizer = sgd()
    scheduler = ExpressionLR(optimizer, "0.5 ** epoch")
    assert lr_curve(optimizer, scheduler, 3) == pytest.approx([1.0, 0.5, 0.25, 0.125])
    state = scheduler.state_dict()
    torch.save(state, "/dev/null")  # picklable, unlike a lambda
    resumed_opt = sgd()
    resumed = ExpressionLR(resumed_opt, "0.5 ** epoch")
    resumed.load_state_dict(state)
    resumed_opt.param_groups[0]["lr"] = optimizer.param_groups[0]["lr"]
    optimizer.step()
    scheduler.step()
    resumed_opt.step()
    resumed.step()
    assert resumed_opt.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"] == pytest.approx(0.0625)


def test_expression_lr_refuses_code():
    with pytest.raises(ConfigError, match="cannot be evaluated"):
        ExpressionLR(sgd(), "__import__('os').getcwd()")
