"""status.json: whether a run is running, completed, failed (and why) or was interrupted.

metrics.json only exists for runs that finished; the run browser and sweep summaries also need the
failed and unfinished ones, with the error that stopped them and how long they ran.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
from pathlib import Path
from typing import Any

from trainlab.records.files import write_json

STATUS_FILE = "status.json"
STATUSES = ("running", "completed", "failed", "interrupted")  # and "killed", inferred when read


def is_rank_zero() -> bool:
    """Imported here: `trainlab.runs` reads statuses and should not pay for importing Lightning."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return rank_zero_only.rank == 0


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def read_status(run_dir: Path) -> dict[str, Any] | None:
    """The run's status.json, or None when it has none (or an unreadable one)."""
    try:
        status = json.loads((run_dir / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) else None


def mark_running(run_dir: Path) -> None:
    """Written at start, with the process id, so a run killed without a word can be told apart."""
    if is_rank_zero():
        record = {"status": "running", "started": _now(), "error": None, "pid": os.getpid(), "host": _host()}
        write_json(run_dir / STATUS_FILE, record)


def effective_status(status: dict[str, Any]) -> str:
    """`running`, unless its process on this host is gone: then it was `killed` (kill -9, OOM, power)."""
    state = str(status.get("status") or "unknown")
    if state != "running" or status.get("host") != _host() or not isinstance(status.get("pid"), int):
        return state
    try:
        os.kill(status["pid"], 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return "killed"
    except PermissionError:  # exists, owned by someone else
        return state
    return state


def _host() -> str:
    return socket.gethostname()


def mark_finished(run_dir: Path, status: str, error: str | None = None, at_start: bool = False) -> None:
    """Record the outcome, keeping the start time written by mark_running. `at_start`: the run failed
    before training (a config or data error found by preflight); the run browser hides such runs."""
    if status not in STATUSES[1:]:
        raise ValueError(f"unknown final status {status!r}")
    if not is_rank_zero():
        return
    started = (read_status(run_dir) or {}).get("started")
    ended = _now()
    record: dict[str, Any] = {"status": status, "started": started, "ended": ended, "error": error}
    if at_start:
        record["at_start"] = True
    if started:
        record["duration_s"] = round(
            (
                datetime.datetime.fromisoformat(ended) - datetime.datetime.fromisoformat(started)
            ).total_seconds()
        )
    write_json(run_dir / STATUS_FILE, record)
