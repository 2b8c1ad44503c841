import subprocess
import sys

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from trainlab.errors import ConfigError
from trainlab.playground import FUNCTIONS, minimize, optimizer_factory, parse


def test_sgd_on_the_tutorial_quadratic_follows_the_closed_form():
    """y = 4x^2, x0 = 2: each SGD step multiplies x by (1 - 8 lr)."""
    run = minimize(FUNCTIONS["quadratic"], optimizer_factory("sgd"), steps=5, lr=0.1)
    assert [p[0] for p in run.path] == pytest.approx([2 * 0.2**t for t in range(6)])
    assert run.losses[0] == 16.0


def test_too_large_a_learning_rate_is_reported_as_diverged():
    run = minimize(FUNCTIONS["quadratic"], optimizer_factory("sgd"), steps=100, lr=0.5)
    assert run.note.startswith("diverged at step")


def test_lbfgs_uses_its_closure_and_solves_rosenbrock():
    run = minimize(FUNCTIONS["rosenbrock"], optimizer_factory("lbfgs"), steps=30, lr=1.0)
    assert run.losses[-1] < 1e-6 and run.path[-1] == pytest.approx((1.0, 1.0), abs=1e-3)


def test_command_writes_plots_and_tensorboard_runs(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainlab.playground",
            "optim=sgd,adam,sparse_adam",
            "lr=0.05,0.1",
            "momentum=0,0.9",
            "steps=30",
            f"out={tmp_path}",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    for name in ("quadratic_loss", "quadratic_trajectory", "rosenbrock_loss", "rosenbrock_trajectory"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
    runs = sorted(p.name for p in (tmp_path / "tensorboard").iterdir())
    assert "quadratic-sgd_lr=0.1_momentum=0.9" in runs and "rosenbrock-adam_lr=0.05" in runs
    assert len(runs) == 2 * (4 + 2)  # sgd: 2 lrs x 2 momenta, adam: 2 lrs (no momentum), per function
    events = EventAccumulator(str(tmp_path / "tensorboard" / "quadratic-sgd_lr=0.1_momentum=0"))
    events.Reload()
    assert events.Scalars("playground/quadratic/loss")[0].value == 16.0
    assert "skipping sparse_adam" in done.stdout


def test_bad_arguments_are_named():
    with pytest.raises(ConfigError, match="optim=nope unknown"):
        parse(["optim=nope"])
    with pytest.raises(ConfigError, match="Unknown argument 'speed=3'"):
        parse(["speed=3"])
