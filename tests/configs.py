"""Compose the shipped Hydra config tree in tests, exactly as `python -m trainlab` would."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from trainlab.core.build import shipped_options as options

__all__ = ["compose_train", "options"]


def compose_train(tmp_path: Path, *overrides: str) -> DictConfig:
    """The run config for these overrides, with paths under tmp_path (no Hydra run needed)."""
    with initialize_config_module(config_module="trainlab.conf", version_base="1.3"):
        return compose(
            "train",
            overrides=[
                f"paths.output_dir={tmp_path / 'run'}",
                f"paths.data_dir={tmp_path / 'data'}",
                f"paths.mlflow_dir={tmp_path / 'mlflow'}",
                *overrides,
            ],
        )
