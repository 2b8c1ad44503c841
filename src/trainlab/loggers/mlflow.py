"""MLflow through Lightning's MLFlowLogger: a local SQLite store unless told otherwise, one experiment per
sweep, one run per job, and a resumed run that continues its own MLflow run.

Lightning sends the scalars (`log_metrics`, every metric at its global step); `MLflowBackend` writes the
rest of the run's report: parameters, tags, the config and provenance, figures and files as artifacts,
and how the run ended. MLflow: https://mlflow.org/docs/latest/ml/tracking/
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import MLFlowLogger as LightningMLFlowLogger
from matplotlib.figure import Figure

from trainlab.compat import continue_tracker_run, point_mlflow_logger_at
from trainlab.errors import ConfigError, TrainlabError
from trainlab.loggers.backend import Backend
from trainlab.loggers.job import current_job, require_tracker
from trainlab.loggers.mlflow_store import STATUSES, check_sqlite_store, no_retries, quiet_store_logs, reach
from trainlab.records.catalog import flatten

log = logging.getLogger(__name__)

PARAM_VALUE_LIMIT = 6000  # MLflow's longest parameter value (characters)
SERIES = ("train/", "val/", "test/", "lr/")  # what the module logs through Lightning, step by step


class MLFlowLogger(LightningMLFlowLogger):
    """Lightning's MLFlowLogger with the run's names filled in, and its store checked before training.

    Args:
        tracking_uri: where runs are recorded: `sqlite:///<file>` (the default, under outputs/mlflow;
            the file and its folder are created), or an MLflow server `http(s)://host:port`.
        experiment_name: None: the sweep dir in a sweep (one experiment per sweep), else `trainlab`.
        run_name: None: the job's overrides (`optim=adam,seed=2`), else the run dir's name.
        tags: added to trainlab's own (`trainlab.run_dir`, `trainlab.overrides`, in a sweep
            `trainlab.sweep_dir` and `trainlab.job`, for Optuna `optuna.trial`).
        artifact_location: the artifact root of an experiment trainlab creates (None: the store's).
        log_best_checkpoint: upload the best checkpoint as an artifact when the run ends.

    Raises:
        ConfigError: mlflow is not installed, or the URI is not one MLflow takes, or its SQLite file
            cannot be created or opened.
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
        require_tracker("mlflow")
        quiet_store_logs()
        job = current_job()
        self.job = job
        self.tracking_uri = str(tracking_uri)
        self.log_best_checkpoint = log_best_checkpoint
        self.continues: str | None = None  # the run id a resume continues (trainlab.loggers.report)
        try:
            check_sqlite_store(self.tracking_uri, self.named, create=True)
            super().__init__(
                experiment_name=experiment_name or job.experiment,
                run_name=run_name or job.run_name,
                tracking_uri=self.tracking_uri,
                tags=job.run_tags() | {str(k): str(v) for k, v in (tags or {}).items()},
                artifact_location=artifact_location,
                **kwargs,
            )
        except TrainlabError as err:
            raise ConfigError(str(err)) from None
        except Exception as err:  # MLflow refuses a URI it has no store for as it builds its client
            text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError(f"{self.named}: MLflow cannot use this store ({text[:300]}). {HINT}") from None

    @property
    def named(self) -> str:
        return f"logger.mlflow.tracking_uri={self.tracking_uri}"

    def continue_run(self, run_id: str, tracking_uri: str | None) -> None:
        """Continue run `run_id` of the store `tracking_uri` (the one it was recorded in, which a resume
        started from another directory would otherwise not find), instead of creating a run."""
        if tracking_uri and tracking_uri != self.tracking_uri:
            log.info("mlflow: the run is in %s (trackers.json); continuing it there", tracking_uri)
            self.tracking_uri = tracking_uri
            point_mlflow_logger_at(self, tracking_uri)
        continue_tracker_run(self, run_id)
        self.continues = run_id

    def check(self) -> None:
        """Reach the store once, quickly, and the run a resume continues: either missing stops the run
        before training, naming the URI (MLflow would retry for minutes mid-run)."""
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        client = MlflowClient(self.tracking_uri)
        try:
            reach(self.tracking_uri, self.named, lambda: client.search_experiments(max_results=1), HINT)
        except TrainlabError as err:
            raise ConfigError(str(err)) from None
        if self.continues:
            try:
                with no_retries():
                    client.get_run(self.continues)
            except MlflowException:
                raise ConfigError(
                    f"ckpt_path=last: the run dir's trackers.json continues MLflow run {self.continues} of "
                    f"{self.tracking_uri}, which does not hold it (a store deleted or moved?). Remove the "
                    "mlflow entry of trackers.json to record the resumed run as a new MLflow run."
                ) from None


HINT = "Start the server, give a reachable URI, or drop the override: the default is the local store."


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
        job = getattr(self.logger, "job", None)  # a resume's own overrides (ckpt_path=last, more epochs)
        tags += [RunTag(k, v) for k, v in (job.run_tags() if job is not None else {}).items()]
        if run.info.status != "RUNNING":  # a resumed run runs again
            self.client.update_run(self.run_id, status="RUNNING")
        for start in range(0, max(len(new), len(tags)), 100):  # MLflow takes 100 per call
            self.client.log_batch(
                self.run_id, params=new[start : start + 100], tags=tags[start : start + 100]
            )
        self.client.log_text(self.run_id, config_yaml, "config.yaml")
        self.client.log_dict(self.run_id, dict(provenance), "provenance.json")

    def summary(self, metrics: Mapping[str, Any]) -> None:
        """The results Lightning does not log as series (`epochs`, `wall_s`), at the step of the epochs
        trained: a resumed run's newer values are then MLflow's latest."""
        from mlflow.entities import Metric

        now, step = int(time.time() * 1000), int(metrics.get("epochs") or 0)
        extra = [
            Metric(key, float(value), now, step)
            for key, value in metrics.items()
            if not key.startswith(SERIES) and isinstance(value, int | float) and not isinstance(value, bool)
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
