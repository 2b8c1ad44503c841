"""Which job of which sweep a run is, as the trackers name it, and the tracker run ids its run dir keeps.

A tracker (MLflow, W&B) groups runs by experiment (MLflow) or group (W&B): one per sweep, named after
the sweep dir, so a sweep's jobs compare in one table, and two sweeps never share one. A run is named by
its command-line overrides (what the sweep varies), and carries them as tags.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainlab.atomic import atomic_write_text
from trainlab.errors import ConfigError
from trainlab.records.files import TRACKERS_FILE

DEFAULT_EXPERIMENT = "trainlab"


@dataclass(frozen=True)
class Job:
    """The Hydra job a run is: its dir, its overrides, and in a sweep the sweep dir and job number."""

    run_dir: Path
    overrides: tuple[str, ...] = ()
    sweep_dir: str | None = None
    number: int | None = None
    optuna: bool = False
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def experiment(self) -> str:
        """The sweep dir as given (`outputs/multirun/<date>/<time>`) in a sweep, else `trainlab`."""
        return self.sweep_dir or DEFAULT_EXPERIMENT

    @property
    def run_name(self) -> str:
        """The overrides (`optim=adam,seed=2`), or the run dir's name when there are none."""
        shown = [o for o in self.overrides if not o.lstrip("+~").startswith("hydra.")]
        return ",".join(shown) if shown else self.run_dir.name

    def run_tags(self) -> dict[str, str]:
        """`trainlab.run_dir`, `trainlab.overrides`, in a sweep `trainlab.sweep_dir` and `trainlab.job`,
        for Optuna `optuna.trial` (its trial number: the sweeper asks one trial per job, in order)."""
        tags = {"trainlab.run_dir": str(self.run_dir), "trainlab.overrides": " ".join(self.overrides)}
        if self.sweep_dir is not None:
            tags["trainlab.sweep_dir"] = self.sweep_dir
            tags["trainlab.job"] = str(self.number)
            if self.optuna:
                tags["optuna.trial"] = str(self.number)
        return tags | self.tags


def current_job() -> Job:
    """The running Hydra job; outside Hydra (a test building a logger), the working directory."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return Job(run_dir=Path.cwd())
    hydra = HydraConfig.get()
    overrides = tuple(hydra.overrides.task)
    run_dir = Path(hydra.runtime.output_dir)
    if hydra.mode != RunMode.MULTIRUN:
        return Job(run_dir=run_dir, overrides=overrides)
    sweeper = str(hydra.sweeper.get("_target_", ""))
    return Job(
        run_dir=run_dir,
        overrides=overrides,
        sweep_dir=str(hydra.sweep.dir),
        number=int(hydra.job.num),
        optuna="optuna" in sweeper.lower(),
    )


def require_tracker(package: str) -> None:
    """`logger=<package>` needs the package, an extra of trainlab's (`pip install 'trainlab[<package>]'`).

    Raises:
        ConfigError: it is not installed.
    """
    if importlib.util.find_spec(package) is None:
        raise ConfigError(
            f"logger={package} needs the {package} package, which is not installed: pip install "
            f"'trainlab[{package}]' (or pip install {package}), or choose another logger."
        )


def read_tracked_runs(run_dir: Path) -> dict[str, dict[str, Any]]:
    """What `record_tracked_run` wrote in this run dir ({} when nothing, or an unreadable file)."""
    try:
        records = json.loads((run_dir / TRACKERS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return records if isinstance(records, dict) else {}


def record_tracked_run(run_dir: Path, backend: str, record: Mapping[str, Any]) -> None:
    """Keep a tracker's run id in the run dir, so a resume of this run continues that tracker run."""
    records = read_tracked_runs(run_dir)
    records[backend] = dict(record)
    atomic_write_text(run_dir / TRACKERS_FILE, json.dumps(records, indent=2) + "\n")
