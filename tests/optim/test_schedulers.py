import functools

import pytest
import torch

from trainlab.errors import ConfigError
from trainlab.optim.schedulers import (
    ExpressionLR,
    RunLength,
    build_scheduler,
    place_schedule,
    resolve_lengths,
)


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
    config = build_scheduler(spec, optimizer)
    assert isinstance(config["scheduler"], torch.optim.lr_scheduler.SequentialLR)
    assert lr_curve(optimizer, config["scheduler"], 4) == pytest.approx([0.1, 0.55, 1.0, 0.5, 0.25])


def test_warmup_alone_ramps_then_holds():
    optimizer = sgd()
    config = build_scheduler({"scheduler": None, "warmup": 2, "warmup_start_factor": 0.5}, optimizer)
    assert lr_curve(optimizer, config["scheduler"], 3) == pytest.approx([0.5, 0.75, 1.0, 1.0])


def test_onecycle_total_steps_come_from_the_run_and_are_required():
    node = {
        "scheduler": {"_target_": "torch.optim.lr_scheduler.OneCycleLR", "max_lr": 0.1, "total_steps": None},
        "interval": "step",
        "lengths": {"total_steps": 1.0},
    }
    assert resolve_lengths(node, RunLength(epochs=4, steps_per_epoch=10)) == [
        "total_steps=40 (1.0 x 40 optimizer steps)"
    ]
    assert node["scheduler"]["total_steps"] == 40
    factory = functools.partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=0.1, total_steps=None)
    with pytest.raises(ConfigError, match="total_steps is null and was not derived"):
        build_scheduler({"scheduler": factory, "lengths": {"total_steps": 1.0}}, sgd())


def test_plateau_keeps_its_monitor_and_refuses_warmup():
    factory = functools.partial(torch.optim.lr_scheduler.ReduceLROnPlateau, patience=0)
    config = build_scheduler({"scheduler": factory, "monitor": "val/loss", "interval": "epoch"}, sgd())
    assert config["monitor"] == "val/loss"
    with pytest.raises(ConfigError, match="cannot precede plateau"):
        build_scheduler({"scheduler": factory, "warmup": 1}, sgd())


def test_bad_interval_is_named():
    with pytest.raises(ConfigError, match=r"scheduler\.interval='batch'"):
        build_scheduler(
            {
                "scheduler": functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1),
                "interval": "batch",
            },
            sgd(),
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


RUN = RunLength(epochs=10, steps_per_epoch=7)


@pytest.mark.parametrize(
    ("interval", "warmup", "expected"),
    [
        ("epoch", 0, 10),  # T_max: the run's epochs
        ("step", 0, 70),  # ... or its optimizer steps
        ("epoch", 2, 8),  # after the warm-up, so the cosine still ends at eta_min
        ("step", 5, 65),
    ],
)
def test_lengths_follow_the_run_in_the_schedulers_unit_after_the_warmup(interval, warmup, expected):
    node = {
        "scheduler": {"_target_": "torch.optim.lr_scheduler.CosineAnnealingLR", "T_max": None},
        "interval": interval,
        "warmup": warmup,
        "lengths": {"T_max": 1.0},
    }
    resolve_lengths(node, RUN)
    assert node["scheduler"]["T_max"] == expected


def test_explicit_lengths_are_kept_and_lists_and_warmup_shares_are_derived():
    node = {
        "scheduler": {"_target_": "torch.optim.lr_scheduler.MultiStepLR", "milestones": None},
        "interval": "epoch",
        "warmup": None,
        "lengths": {"milestones": [0.6, 0.8], "warmup": 0.2},
    }
    derived = resolve_lengths(node, RUN)
    assert (node["warmup"], node["scheduler"]["milestones"]) == (2, [5, 6])  # of the 8 epochs after it
    assert derived == [
        "warmup=2 (0.2 x 10 epochs)",
        "milestones=[5, 6] ([0.6, 0.8] x 8 epochs after 2 of warm-up)",
    ]
    kept = {"scheduler": {"T_max": 3}, "interval": "epoch", "warmup": 0, "lengths": {"T_max": 1.0}}
    assert resolve_lengths(kept, RUN) == [] and kept["scheduler"]["T_max"] == 3


def test_max_steps_and_frequency_shorten_the_schedule():
    run = RunLength(epochs=10, steps_per_epoch=7, max_steps=20)
    # every 4th step within each epoch (Lightning's count): epochs of 7, 7 and 6 steps give 1 + 1 + 1
    assert (run.steps, run.epochs_trained, run.intervals("epoch"), run.intervals("step", 4)) == (20, 3, 3, 3)


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"scheduler": {"T_max": None}, "lengths": {"T_max": 1.5}}, r"lengths\.T_max=1\.5 must be a share"),
        ({"scheduler": {"T_max": None}, "warmup": 10, "lengths": {"T_max": 1.0}}, "leaves no room"),
        ({"scheduler": {"T_max": None}, "lengths": {"T_0": 0.5}}, "has no argument T_0"),
    ],
)
def test_bad_lengths_are_named(node, message):
    with pytest.raises(ConfigError, match=message):
        resolve_lengths({"interval": "epoch", "warmup": 0, **node}, RUN)


def test_an_unbounded_run_cannot_derive_a_length():
    node = {"scheduler": {"T_max": None}, "interval": "epoch", "warmup": 0, "lengths": {"T_max": 1.0}}
    with pytest.raises(ConfigError, match="unbounded"):
        resolve_lengths(node, RunLength(epochs=None, steps_per_epoch=7))


@pytest.mark.parametrize("warmup", [0, 2])
def test_a_placed_schedule_is_where_a_run_that_followed_it_from_the_start_would_be(warmup):
    def spec(total):
        factory = functools.partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=total)
        return {"scheduler": factory, "interval": "epoch", "warmup": warmup}

    fresh = sgd()
    straight = lr_curve(fresh, build_scheduler(spec(8), fresh)["scheduler"], 8)
    # a run of 4 intervals under a shorter schedule, then the 8-interval one placed at step 4
    optimizer = sgd()
    lr_curve(optimizer, build_scheduler(spec(2), optimizer)["scheduler"], 4)
    placed = place_schedule(spec(8), optimizer, steps_taken=4)["scheduler"]
    assert lr_curve(optimizer, placed, 4) == straight[4:]


@pytest.mark.parametrize("old", ["onecycle", "cyclic"])
def test_a_schedule_placed_after_one_that_cycled_lr_and_momentum_starts_from_the_configured_values(old):
    """onecycle and cyclic leave their own initial_lr (max_lr / div_factor, base_lr) and a cycled momentum
    in the param groups; the new schedule must start from the optimizer's configured lr and momentum."""
    factories = {
        "onecycle": functools.partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=1.0, total_steps=10),
        "cyclic": functools.partial(
            torch.optim.lr_scheduler.CyclicLR, base_lr=0.01, max_lr=1.0, step_size_up=3, cycle_momentum=True
        ),
    }
    cosine = {"scheduler": functools.partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=8)}
    fresh = sgd()
    straight = lr_curve(fresh, build_scheduler(cosine, fresh)["scheduler"], 8)
    optimizer = sgd()
    lr_curve(optimizer, build_scheduler({"scheduler": factories[old]}, optimizer)["scheduler"], 4)
    assert optimizer.param_groups[0]["momentum"] != 0.9  # cycled
    placed = place_schedule(cosine, optimizer, steps_taken=4, configured=sgd().param_groups)["scheduler"]
    assert lr_curve(optimizer, placed, 4) == pytest.approx(straight[4:], rel=1e-12)
    assert optimizer.param_groups[0]["momentum"] == 0.9


def test_a_position_past_the_schedules_end_is_a_clear_error():
    onecycle = {
        "scheduler": functools.partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=1.0, total_steps=5)
    }
    with pytest.raises(ConfigError, match="cannot be placed at its step 9"):
        place_schedule(onecycle, sgd(), steps_taken=9)
