"""Shared fixtures: real-format datasets written per session, the shared real data, a CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Before torch is imported anywhere: one intra-op thread per test process and per CLI run it starts
# (inherited). The suite runs two workers on two cores; tiny models gain nothing from a second thread,
# and oversubscribed OpenMP threads halve throughput (measured: two 4-epoch digits runs side by side
# took 33 s with two threads each, 15 s with one).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

from realformat import write_cifar10, write_image_folder

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# The files that take minutes (their sweeps train many runs), longest first. CI runs two xdist workers
# that take whole files in collection order (--dist loadfile) and ends when the last file does: a long
# file handed out last keeps one core busy while the other idles, so these go out first.
LONG_FILES = (
    "e2e/test_losses.py",
    "e2e/test_optim.py",
    "e2e/test_cli.py",
    "e2e/test_resume_longer.py",
    "e2e/test_fast_recipe.py",
    "e2e/test_resume.py",
    "e2e/test_experiment_tracking.py",
    "e2e/test_resume_matrix.py",
    "e2e/test_multi_device.py",
    "test_benchmarks.py",
)


def pytest_configure(config: pytest.Config) -> None:
    # pytest-xdist otherwise hands out files with the most tests first, whatever the order below
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    first = {name: rank for rank, name in enumerate(LONG_FILES)}
    tests = Path(__file__).resolve().parent

    def rank(item: pytest.Item) -> int:
        return first.get(item.path.resolve().relative_to(tests).as_posix(), len(first))

    items.sort(key=rank)  # stable: every other file keeps its place


@pytest.fixture(scope="session")
def cifar10_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cifar10(tmp_path_factory.mktemp("cifar10"))


@pytest.fixture(scope="session")
def rmb_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """root/RMB_data/{1,100}/*.jpg, 20 notes per class."""
    root = tmp_path_factory.mktemp("rmb")
    write_image_folder(root / "RMB_data", ["1", "100"], per_class=20)
    return root


@pytest.fixture(scope="session")
def shared_rmb() -> Path:
    root = SHARED_DATA / "rmb"
    if not (root / "RMB_data").is_dir():
        pytest.skip("../shared/data/rmb is not present")
    return root


@pytest.fixture(scope="session")
def shared_cifar_train() -> Path:
    root = SHARED_DATA / "cifar10-train"
    if not root.is_dir():
        pytest.skip("../shared/data/cifar10-train is not present")
    return root


@dataclass
class RunResult:
    returncode: int
    stdout: str
    stderr: str
    run_dir: Path

    @property
    def metrics(self) -> dict[str, Any]:
        path = self.run_dir / "metrics.json"
        assert path.is_file(), (
            f"no metrics.json in {self.run_dir}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"
        )
        return json.loads(path.read_text())

    def check(self) -> RunResult:
        assert self.returncode == 0, (
            f"exit {self.returncode}\nstdout:\n{self.stdout[-4000:]}\nstderr:\n{self.stderr[-4000:]}"
        )
        return self


def run_cli(
    overrides: list[str],
    cwd: Path,
    run_dir: Path | None = None,
    module: str = "trainlab",
    timeout: int = 600,
    env: dict[str, str] | None = None,
    python: str = sys.executable,
) -> RunResult:
    """`python -m trainlab OVERRIDES` in a subprocess, as a user would run it."""
    run_dir = run_dir or cwd / "run"
    args = [python, "-m", module, *overrides]
    if module == "trainlab":
        args += [f"hydra.run.dir={run_dir}", "trainer.enable_progress_bar=false"]
    done = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
    return RunResult(done.returncode, done.stdout, done.stderr, run_dir)


@pytest.fixture
def cli(tmp_path: Path):
    def runner(*overrides: str, **kwargs: Any) -> RunResult:
        return run_cli(list(overrides), cwd=kwargs.pop("cwd", tmp_path), **kwargs)

    return runner
