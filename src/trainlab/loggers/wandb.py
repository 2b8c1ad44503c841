"""Weights & Biases through Lightning's WandbLogger: offline by default (the run is written into the run
dir, `wandb sync <dir>` uploads it later), one group per sweep, one run per job, finished with the job.

Lightning sends the scalars; `WandbBackend` writes the rest of the run's report. W&B:
https://docs.wandb.ai/guides/integrations/lightning/
"""

from __future__ import annotations

import contextlib
import netrc
import os
import shutil
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from matplotlib.figure import Figure

from trainlab.compat import drop_unset_wandb_arguments
from trainlab.errors import ConfigError
from trainlab.loggers.backend import Backend
from trainlab.loggers.job import DEFAULT_EXPERIMENT, current_job, require_tracker


class WandbLogger(LightningWandbLogger):
    """Lightning's WandbLogger with the run's names filled in.

    Args:
        save_dir: where W&B writes the run (`<save_dir>/wandb/offline-run-*`): the run dir by default.
        offline: True (the default) writes locally, uploaded later with `wandb sync`; False logs online
            (needs `wandb login` or WANDB_API_KEY).
        project: the W&B project (default `trainlab`).
        group: None: the sweep dir in a sweep, so a sweep's jobs group together.
        name: None: the job's overrides (`optim=adam,seed=2`), else the run dir's name.
        log_best_checkpoint: upload the best checkpoint as a `model` artifact when the run ends.
        **kwargs: passed on to `wandb.init` (`entity`, `tags`, `settings`, ...).

    Raises:
        ConfigError: wandb is not installed.
    """

    def __init__(
        self,
        save_dir: str,
        offline: bool = True,
        project: str = DEFAULT_EXPERIMENT,
        group: str | None = None,
        name: str | None = None,
        log_best_checkpoint: bool = True,
        **kwargs: Any,
    ) -> None:
        require_tracker("wandb")
        import wandb

        job = current_job()
        self.offline = offline
        self.log_best_checkpoint = log_best_checkpoint
        kwargs.setdefault("settings", wandb.Settings(silent=True, console="off"))
        kwargs.setdefault("config", {"trainlab": job.run_tags()})
        super().__init__(
            save_dir=save_dir,
            offline=offline,
            project=project,
            group=group or job.sweep_dir,
            name=name or job.run_name,
            job_type="train",
            **kwargs,
        )
        drop_unset_wandb_arguments(self)

    def check(self) -> None:
        """Online, W&B needs an API key: without one, stop before training rather than at wandb.init."""
        if self.offline or os.environ.get("WANDB_API_KEY"):
            return
        host = urllib.parse.urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
        with contextlib.suppress(OSError, netrc.NetrcParseError):
            if host and netrc.netrc().authenticators(host):
                return
        raise ConfigError(
            f"logger.wandb.offline=false logs to W&B at {host}, and no W&B API key is set: run `wandb login` "
            "(or set WANDB_API_KEY), or keep logger.wandb.offline=true and upload later with `wandb sync`."
        )


class WandbBackend(Backend):
    """Config, comparison row, figures and files of a run into its W&B run, which it finishes."""

    name = "wandb"
    takes_figures = True

    def overview(
        self,
        resolved: Mapping[str, Any],
        hparams: Mapping[str, Any],
        config_yaml: str,
        provenance: Mapping[str, Any],
    ) -> None:
        run = self.logger.experiment
        self.logger.log_hyperparams(dict(resolved))
        run.config.update({"hparams": dict(hparams), "provenance": dict(provenance)}, allow_val_change=True)

    def summary(self, metrics: Mapping[str, Any]) -> None:
        run = self.logger.experiment
        for key, value in metrics.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                run.summary[key] = value

    def figure(self, tag: str, figure: Figure, step: int) -> None:
        import wandb

        self.logger.experiment.log({tag: wandb.Image(figure), "trainer/global_step": step})

    def histogram(self, tag: str, values: Any, step: int) -> None:
        import wandb

        histogram = wandb.Histogram(values.detach().float().cpu().numpy())
        self.logger.experiment.log({tag: histogram, "trainer/global_step": step})

    def artifact(self, path: Path, folder: str) -> None:
        run = self.logger.experiment
        if folder == "checkpoints":
            import wandb

            model = wandb.Artifact(f"model-{run.id}", type="model")
            model.add_file(str(path))
            run.log_artifact(model, aliases=["best"])
        else:  # a file in the run's own files folder is part of the run (uploaded by `wandb sync`)
            target = Path(run.dir) / folder / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)

    def ended(self, status: str, message: str | None) -> None:
        run = self.logger.experiment
        if message:
            run.summary["trainlab.error"] = message
        # finished here, not at exit: the next job of a sweep in this process gets a run of its own
        run.finish(exit_code=0 if status == "completed" else 1)

    def tracked_run(self) -> dict[str, Any]:
        run = self.logger.experiment
        return {"run_id": run.id, "project": run.project, "dir": str(Path(run.dir).parent)}
