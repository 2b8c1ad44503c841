"""The `trainlab` command: a Hydra app whose config tree ships inside the package (trainlab/conf)."""

from __future__ import annotations

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from trainlab.errors import TrainlabError

log = logging.getLogger("trainlab")


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Train one configuration; returns best val/acc so Hydra sweepers (e.g. Optuna) can maximize it."""
    from trainlab.train import train  # heavy imports after Hydra has parsed the command line

    try:
        metrics = train(cfg)
    except TrainlabError as err:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            log.error("%s", err)
            raise  # a sweep records the failed job and goes on with the others
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    return metrics.get("val/acc_best")
