"""An MLflow tracking store as trainlab reaches it: checked quickly (MLflow itself retries an unreachable
server, or a SQLite file it cannot open, for minutes), quiet, and read back for the run browser.

Light on purpose: `python -m trainlab.runs --mlflow` imports this, not Lightning.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.util
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from trainlab.errors import TrainlabError

SQLITE = "sqlite:///"
STATUSES = {"completed": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}  # trainlab -> MLflow


def quiet_store_logs() -> None:
    """A new store's table set-up and a new experiment are MLflow's and Lightning's INFO / WARNING
    records; for trainlab both are the expected first run, not news."""
    for name in ("mlflow.store.db.utils", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    lightning = logging.getLogger("lightning.pytorch.loggers.mlflow")
    if not any(isinstance(f, _DropExperimentCreated) for f in lightning.filters):
        lightning.addFilter(_DropExperimentCreated())


class _DropExperimentCreated(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "not found. Creating it" not in record.getMessage()


@contextlib.contextmanager
def no_retries() -> Iterator[None]:
    """MLflow's HTTP client without its retries (minutes against a server that is down)."""
    keys = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
    saved = {key: os.environ.get(key) for key in keys}
    os.environ.update(keys)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def check_sqlite_store(uri: str, named: str, create: bool) -> None:
    """A `sqlite:///FILE` store opens as a SQLite database (created, with its folder, when `create`).

    Raises:
        TrainlabError: naming `named` (the key or option that gave the URI): the file cannot be created
            or opened, is not a database, or (not `create`) does not exist.
    """
    if not uri.startswith(SQLITE):
        return
    path = Path(uri[len(SQLITE) :])
    if not create and not path.is_file():
        raise TrainlabError(f"{named}: {path} does not exist, so there is no MLflow store there.")
    try:
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(path, timeout=10)) as db:
            db.execute("PRAGMA schema_version").fetchone()
    except (OSError, sqlite3.Error) as err:
        raise TrainlabError(
            f"{named}: the SQLite file {path} cannot be {'created or ' if create else ''}opened as an "
            f"MLflow store ({err}). Give a file in a folder you can write to, or drop the override for the "
            "local store under outputs/mlflow."
        ) from None


def reach(uri: str, named: str, call: Callable[[], Any], hint: str) -> Any:
    """`call()` against the store at `uri` without MLflow's retries; any failure names `named`."""
    try:
        with no_retries():
            return call()
    except TrainlabError:
        raise
    except Exception as err:  # MLflow raises its own, SQLAlchemy's, requests' and OS errors alike
        text = str(err).strip()
        first_line = text.splitlines()[0] if text else type(err).__name__
        cause = first_line[:400]
        raise TrainlabError(f"{named}: the MLflow store cannot be reached ({cause}). {hint}") from None


def stored_runs(tracking_uri: str, experiment: str | None = None) -> list[dict[str, Any]]:
    """Every run of an MLflow store (of one `experiment` by name), newest first, as the run browser lists
    them: {experiment, name, run_dir, started (ISO), status, duration_s, overrides, metrics, error}.

    Raises:
        TrainlabError: mlflow is missing, the store does not exist or cannot be read, or it has no such
            experiment.
    """
    if importlib.util.find_spec("mlflow") is None:
        raise TrainlabError("--mlflow needs the mlflow package: pip install 'trainlab[mlflow]'.")
    quiet_store_logs()
    named = f"--mlflow {tracking_uri}"
    check_sqlite_store(tracking_uri, named, create=False)

    def read() -> tuple[dict[str, str], list[Any]]:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri)
        experiments = {e.experiment_id: e.name for e in client.search_experiments()}
        ids = list(experiments)
        if experiment is not None:
            ids = [i for i, name in experiments.items() if name == experiment]
            if not ids:
                known = ", ".join(sorted(experiments.values())) or "none"
                raise TrainlabError(
                    f"--experiment {experiment}: {tracking_uri} has no such experiment (it has: {known})."
                )
        runs = client.search_runs(ids, order_by=["attributes.start_time DESC"]) if ids else []
        return experiments, runs

    experiments, runs = reach(
        tracking_uri, named, read, "Give the store's URI, e.g. sqlite:///outputs/mlflow/mlflow.db."
    )
    statuses = {value: key for key, value in STATUSES.items()} | {"RUNNING": "running"}
    listed = []
    for run in runs:
        info, tags = run.info, run.data.tags
        listed.append(
            {
                "experiment": experiments.get(info.experiment_id, info.experiment_id),
                "name": info.run_name,
                "run_dir": tags.get("trainlab.run_dir"),
                "started": _iso(info.start_time),
                "status": statuses.get(info.status, info.status.lower()),
                "duration_s": (info.end_time - info.start_time) / 1000
                if info.end_time and info.start_time
                else None,
                "overrides": tags.get("trainlab.overrides", ""),
                "metrics": dict(run.data.metrics),
                "error": tags.get("trainlab.error"),
            }
        )
    return listed


def _iso(milliseconds: int | None) -> str | None:
    if not milliseconds:
        return None
    return datetime.datetime.fromtimestamp(milliseconds / 1000).astimezone().isoformat(timespec="seconds")
