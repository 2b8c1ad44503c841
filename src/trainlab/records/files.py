"""The small files every run dir holds beside Hydra's .hydra/: metrics.json and provenance.json."""

from __future__ import annotations

import json
import math
import platform
import shlex
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from trainlab.atomic import atomic_write_text

TRACKED_PACKAGES = ("trainlab", "torch", "torchvision", "lightning", "torchmetrics", "hydra-core", "numpy")


def to_number(value: Any) -> float | int | None:
    """A metric as a plain JSON number (tensors included); NaN/inf become None so the JSON stays valid."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool | int):
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else None


def epoch_summary(epoch: int, max_epochs: int | None, metrics: Mapping[str, Any]) -> str:
    """One log line per epoch, like the tutorials' prints: 'epoch 3/10 | train/... | val/... | lr/...'.

    `epoch` counts from 0 (Lightning's current_epoch) and is shown counting from 1; text values (an lr
    range such as '0.001 -> 0.0005') are shown as they are.
    """
    parts = [f"epoch {epoch + 1}/{max_epochs if max_epochs and max_epochs > 0 else '?'}"]
    for prefix in ("train/", "val/", "lr/"):
        values = [
            f"{key} {value}" if isinstance(value, str) else f"{key} {number:.4g}"
            for key, value in sorted(metrics.items())
            if key.startswith(prefix)
            and not key.endswith("_step")
            and (isinstance(value, str) or (number := to_number(value)) is not None)
        ]
        if values:
            parts.append(" ".join(values))
    return " | ".join(parts)


def write_json(path: Path, content: Mapping[str, Any]) -> None:
    atomic_write_text(path, json.dumps(content, indent=2, sort_keys=True) + "\n")


def git_state(directory: Path) -> dict[str, Any]:
    """Commit and dirty flag of the checkout holding `directory`, or nulls outside a git checkout."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=directory, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def provenance(seed: int, source_dir: Path) -> dict[str, Any]:
    """What is needed, beside the composed config, to redo a run."""
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "seed": seed,
        "command": " ".join(sys.argv),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "git": git_state(source_dir),
    }


TRACKERS_FILE = "trackers.json"  # in a run dir: {tracker: {"run_id": ..., ...}} (trainlab.loggers.job)


def mlflow_ui_command(tracking_uri: str) -> str:
    """`mlflow ui --backend-store-uri URI` (local stores only: a server has its own address), with the
    mlflow of this Python's environment where it has one. The UI listens on 127.0.0.1:5000."""
    beside = Path(sys.executable).parent / "mlflow"
    program = str(beside) if beside.is_file() else "mlflow"
    return " ".join(shlex.quote(word) for word in (program, "ui", "--backend-store-uri", tracking_uri))


def tensorboard_command(logdir: Path) -> str:
    """`tensorboard --logdir DIR` with the tensorboard of this Python's environment, so that the hint works
    when pasted into a shell where that environment is not activated."""
    beside = Path(sys.executable).parent / "tensorboard"
    program = str(beside) if beside.is_file() else "tensorboard"
    return " ".join(shlex.quote(word) for word in (program, "--logdir", str(logdir)))
