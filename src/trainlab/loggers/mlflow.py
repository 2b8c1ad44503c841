"""MLflow through Lightning's MLFlowLogger: a local SQLite store unless told otherwise, one experiment per
sweep, one run per job, and a resumed run that continues its own MLflow run.

Lightning sends the scalars (`log_metrics`, every metric at its global step); `MLflowBackend` writes the
rest of the run's report: parameters, tags, the config and provenance, figures and files as artifacts,
and how the run ended. MLflow: https://mlflow.org/docs/latest/ml/tracking/
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.util
import logging
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import MLFlowLogger as LightningMLFlowLogger
from matplotlib.figure import Figure

from trainlab.errors import ConfigError, TrainlabError
from trainlab.loggers.backend import Backend
from trainlab.loggers.job import current_job
from trainlab.records.catalog import flatten

log = logging.getLogger(__name__)

SQLITE = "sqlite:///"
PARAM_VALUE_LIMIT = 6000  # MLflow's longest parameter value (characters)
STATUSES = {"completed": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}


class MLFlowLogger(LightningMLFlowLogger):
    """Lightning's MLFlowLogger with the run's names filled in.

    Args:
        tracking_uri: where runs are recorded: `sqlite:///<file>` (the default, under outputs/mlflow;
            its folder is created), `http(s)://host:port` for an MLflow server, or `file:<dir>`.
        experiment_name: None: the sweep dir in a sweep (one experiment per sweep), else `trainlab`.
        run_name: None: the job's overrides (`optim=adam,seed=2`), else the run dir's name.
        tags: added to trainlab's own (`trainlab.run_dir`, `trainlab.overrides`, in a sweep
            `trainlab.sweep_dir` and `trainlab.job`, for Optuna `optuna.trial`).
        artifact_location: the artifact root of an experiment trainlab creates (None: the store's).
        log_best_checkpoint: upload the best checkpoint as an artifact when the run ends.

    Raises:
        ConfigError: mlflow is not installed.
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment_name: str | None = None,
        run_name: str | None = None,
        tags: Mapping[str, Any] | None = None,
        artifact_location: str | None = None,
        log_best_checkpoint: bool = True,
        **kwargs: Any,
    ) -> None:
        if importlib.util.find_spec("mlflow") is None:
            raise ConfigError(
                "logger=mlflow needs the mlflow package, which is not installed: "
                "pip install 'trainlab[mlflow]' (or pip install mlflow), or choose another logger."
            )
        quiet_store_logs()
        job = current_job()
        tracking_uri = str(tracking_uri)
        if tracking_uri.startswith(SQLITE):
            Path(tracking_uri[len(SQLITE) :]).parent.mkdir(parents=True, exist_ok=True)
        self.job = job
        self.tracking_uri = tracking_uri
        self.log_best_checkpoint = log_best_checkpoint
        super().__init__(
            experiment_name=experiment_name or job.experiment,
            run_name=run_name or job.run_name,
            tracking_uri=tracking_uri,
            tags=job.run_tags() | {str(k): str(v) for k, v in (tags or {}).items()},
            artifact_location=artifact_location,
            **kwargs,
        )

    def check(self) -> None:
        """Reach the tracking store once, quickly: a store that cannot be reached or written stops the
        run before training, naming the URI (MLflow would otherwise retry for minutes mid-run)."""
        from mlflow.exceptions import MlflowException

        try:
            with _no_retries():
                self._mlflow_client.search_experiments(max_results=1)
        except (MlflowException, OSError, ValueError) as err:
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError(
                f"logger.mlflow.tracking_uri={self.tracking_uri}: the MLflow store cannot be reached "
                f"({first_line}). Start the server, give a reachable URI, or leave tracking_uri unset for "
                "the local store under outputs/mlflow."
            ) from None


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
def _no_retries() -> Iterator[None]:
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


class MLflowBackend(Backend):
    """Parameters, tags, config and provenance, figures (PNG artifacts under `figures/<tag>/`), files and
    the end status of a run, into its MLflow run."""

    name = "mlflow"
    takes_figures = True

    def __init__(self, logger: LightningMLFlowLogger) -> None:
        super().__init__(logger)
        self.client = logger.experiment
        self.run_id = logger.run_id

    def overview(
        self,
        resolved: Mapping[str, Any],
        hparams: Mapping[str, Any],
        config_yaml: str,
        provenance: Mapping[str, Any],
    ) -> None:
        from mlflow.entities import Param, RunTag

        # the whole config by its dotted keys (what `trainlab.runs` and the config file say), with the
        # comparison row's choices first (`optim`: adam); paths inside the run dir differ between any two
        # runs by construction and would fill "show diff only" with noise: the run_dir tag says them
        params = {key: str(value) for key, value in hparams.items()}
        run_dir = str((resolved.get("paths") or {}).get("output_dir") or "\0")
        for key, value in flatten(resolved):
            if not str(value).startswith(run_dir):
                params.setdefault(key, str(value))
        params = {key: value[:PARAM_VALUE_LIMIT] for key, value in params.items()}
        run = self.client.get_run(self.run_id)
        # MLflow never changes a logged parameter: a resume that runs longer records the new value as a tag
        logged = run.data.params
        changed = {k: v for k, v in params.items() if k in logged and logged[k] != v}
        new = [Param(k, v) for k, v in params.items() if k not in logged]
        tags = [RunTag(f"trainlab.resumed_with.{k}", v) for k, v in changed.items()]
        tags += [RunTag(k, str(v)) for k, v in _source_tags(provenance).items()]
        if run.info.status != "RUNNING":  # a resumed run runs again
            self.client.update_run(self.run_id, status="RUNNING")
        for start in range(0, max(len(new), len(tags)), 100):  # MLflow takes 100 per call
            self.client.log_batch(
                self.run_id, params=new[start : start + 100], tags=tags[start : start + 100]
            )
        self.client.log_text(self.run_id, config_yaml, "config.yaml")
        self.client.log_dict(self.run_id, dict(provenance), "provenance.json")

    def summary(self, metrics: Mapping[str, Any]) -> None:
        """The results Lightning did not log as series (`epochs`, `wall_s`), as single values."""
        from mlflow.entities import Metric

        logged = self.client.get_run(self.run_id).data.metrics
        now = int(time.time() * 1000)
        extra = [
            Metric(key, float(value), now, 0)
            for key, value in metrics.items()
            if key not in logged and isinstance(value, int | float) and not isinstance(value, bool)
        ]
        if extra:
            self.client.log_batch(self.run_id, metrics=extra)

    def figure(self, tag: str, figure: Figure, step: int) -> None:
        self.client.log_figure(self.run_id, figure, f"figures/{tag}/step_{step:07d}.png")

    def artifact(self, path: Path, folder: str) -> None:
        self.client.log_artifact(self.run_id, str(path), folder or None)

    def ended(self, status: str, message: str | None) -> None:
        if message:
            self.client.set_tag(self.run_id, "trainlab.error", message[:PARAM_VALUE_LIMIT])
        self.client.set_terminated(self.run_id, STATUSES.get(status, "FAILED"))

    def tracked_run(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "experiment_id": self.logger.experiment_id,
            "tracking_uri": getattr(self.logger, "tracking_uri", None),
        }


def _source_tags(provenance: Mapping[str, Any]) -> dict[str, Any]:
    """MLflow's own source tags, from what trainlab's provenance recorded (MLflow's UI shows them)."""
    git = provenance.get("git") if isinstance(provenance.get("git"), Mapping) else {}
    tags = {"mlflow.source.name": "trainlab", "mlflow.source.type": "LOCAL"}
    if git.get("commit"):
        tags["mlflow.source.git.commit"] = git["commit"]
    return tags


def stored_runs(tracking_uri: str, experiment: str | None = None) -> list[dict[str, Any]]:
    """Every run of an MLflow store (of one `experiment` by name), newest first, as the run browser lists
    them: {experiment, name, run_dir, started (ISO), status, duration_s, overrides, metrics}.

    Raises:
        TrainlabError: mlflow is missing, the store cannot be reached, or it has no such experiment.
    """
    if importlib.util.find_spec("mlflow") is None:
        raise TrainlabError("--mlflow needs the mlflow package: pip install 'trainlab[mlflow]'.")
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    quiet_store_logs()
    client = MlflowClient(tracking_uri)
    try:
        with _no_retries():
            experiments = {e.experiment_id: e.name for e in client.search_experiments()}
            if experiment is not None:
                ids = [i for i, name in experiments.items() if name == experiment]
                if not ids:
                    known = ", ".join(sorted(experiments.values())) or "none"
                    raise TrainlabError(
                        f"--experiment {experiment}: {tracking_uri} has no such experiment (it has: {known})."
                    )
            else:
                ids = list(experiments)
            runs = client.search_runs(ids, order_by=["attributes.start_time DESC"]) if ids else []
    except (MlflowException, OSError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TrainlabError(
            f"--mlflow {tracking_uri}: the MLflow store cannot be read ({first_line})."
        ) from None
    statuses = {value: key for key, value in STATUSES.items()} | {"RUNNING": "running"}
    listed = []
    for run in runs:
        info, tags = run.info, run.data.tags
        started = _iso(info.start_time)
        listed.append(
            {
                "experiment": experiments.get(info.experiment_id, info.experiment_id),
                "name": info.run_name,
                "run_dir": tags.get("trainlab.run_dir"),
                "started": started,
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
