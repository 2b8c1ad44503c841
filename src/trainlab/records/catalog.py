"""One run dir read back as a record: overrides, status, metrics, timing. Sweeps and `trainlab.runs` use it.

A run dir is any directory holding Hydra's `.hydra/overrides.yaml`; what it says about the run comes
from status.json (how it ended), metrics.json (what it scored), config.yaml (what it used) and
Hydra's hydra.yaml (whether it is a job of a sweep, and which).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trainlab.records.status import effective_status, read_status


@dataclass
class RunRecord:
    run_dir: Path
    overrides: list[str]
    status: str
    error: str | None = None
    started: str | None = None
    duration_s: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    job: str = ""  # the job number within a sweep; '' for a single run
    at_start: bool = False  # failed before training: nothing was trained or logged
    data: str = ""  # the data option it trained on (Hydra's runtime choice), '' where unknown

    @property
    def refused(self) -> bool:
        """A run that stopped at start-up on a config or data error (see trainlab.training.preflight)."""
        return self.status == "failed" and self.at_start

    @property
    def sweep_dir(self) -> Path | None:
        """The sweep this run is a job of (its parent dir), or None for a single run."""
        return self.run_dir.parent if self.job else None

    def metric(self, key: str) -> float | None:
        value = self.metrics.get(key)
        return float(value) if isinstance(value, int | float) and math.isfinite(value) else None

    @property
    def best_ckpt(self) -> str | None:
        return self.metrics.get("best_ckpt") or self.metrics.get("last_ckpt")

    def config(self) -> dict[str, Any]:
        """The resolved config the run used (config.yaml), else Hydra's composed one."""
        for path in (self.run_dir / "config.yaml", self.run_dir / ".hydra" / "config.yaml"):
            loaded = _load_yaml(path)
            if isinstance(loaded, dict):
                return loaded
        return {}


def is_run_dir(path: Path) -> bool:
    return (path / ".hydra" / "overrides.yaml").is_file()


def read_run(run_dir: Path) -> RunRecord:
    overrides = _load_yaml(run_dir / ".hydra" / "overrides.yaml")
    metrics = _load_json(run_dir / "metrics.json")
    status = read_status(run_dir) or {}
    state = effective_status(status) if status else ("completed" if metrics else "unknown")
    duration = metrics.get("wall_s") if state == "completed" and metrics else status.get("duration_s")
    hydra = (_load_yaml(run_dir / ".hydra" / "hydra.yaml") or {}).get("hydra") or {}
    job = (hydra.get("job") or {}).get("num") if hydra.get("mode") == "MULTIRUN" else None
    return RunRecord(
        run_dir=run_dir,
        overrides=[str(o) for o in overrides] if isinstance(overrides, list) else [],
        status=state,
        error=status.get("error"),
        started=status.get("started"),
        duration_s=float(duration) if isinstance(duration, int | float) else None,
        metrics=metrics,
        job="" if job is None else str(job),
        at_start=bool(status.get("at_start")),
        data=str(((hydra.get("runtime") or {}).get("choices") or {}).get("data") or ""),
    )


def find_runs(root: Path) -> list[RunRecord]:
    """Every run dir under root (root itself included), in path order."""
    candidates = [root, *sorted(p.parent.parent for p in root.rglob(".hydra/overrides.yaml"))]
    seen: dict[Path, RunRecord] = {}
    for path in candidates:
        if path not in seen and is_run_dir(path):
            seen[path] = read_run(path)
    return list(seen.values())


def rank(records: Iterable[RunRecord], key: str = "val/acc_best") -> list[RunRecord]:
    """Best first: completed runs by `key` (highest first), then the rest (failed, running) by path."""

    def order(record: RunRecord) -> tuple:
        value = record.metric(key)
        return (value is None, -(value or 0.0), str(record.run_dir))

    return sorted(records, key=order)


_YAML_LOADER = getattr(
    yaml, "CSafeLoader", yaml.SafeLoader
)  # hydra.yaml is long: libyaml's parser, where installed


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(), Loader=_YAML_LOADER)
    except (OSError, yaml.YAMLError):
        return None


def _load_json(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, Mapping) and not isinstance(loaded, list) else {}


def flatten(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Dotted keys to leaf values; lists stay whole (a transform list is one value)."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from flatten(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, node
