"""Typed schemas for the config keys every run has, checked before anything is built or trained.

Hydra already refuses a misspelled key (the composed config is struct) and an unknown group option (it
lists the available ones). What it cannot know is that `trainer.max_epochs=abc` is not a number, or that
`data.batch_size=0` and `optim.lr=-1` are out of range: those would fail minutes later, deep inside
Lightning or torch. The dataclasses below declare type and range for the common keys of each section;
they are stored in Hydra's ConfigStore (group `schema`, e.g. `schema/trainer`) and every composed config
is checked against them, so such values stop the run at start-up with the key, the value and what is
expected. Keys a schema does not declare (each dataset's own, each optimizer's own) are left to the
class they configure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ValidationError

from trainlab.core.build import where_defined
from trainlab.errors import ConfigError

# Optional[...] rather than `X | None`: OmegaConf reads the annotations at runtime (Python 3.10+ syntax
# in a string annotation is not understood by its type checks).
# ruff: noqa: UP045


def at_least(minimum: float) -> Any:
    return field(default=MISSING, metadata={"min": minimum})


def one_of(*choices: Any) -> Any:
    return field(default=MISSING, metadata={"choices": choices})


@dataclass
class TrainSchema:
    """Top-level keys of conf/train.yaml."""

    seed: int = MISSING
    test: bool = MISSING
    ckpt_path: Optional[str] = MISSING
    nonfinite_loss: str = one_of("stop", "skip")
    tta: Optional[str] = one_of("flip")


@dataclass
class PerfSchema:
    """Speed options (perf.*)."""

    channels_last: bool = MISSING
    compile: bool = MISSING


@dataclass
class TrainerSchema:
    """The lightning.pytorch.Trainer arguments trainlab's trainer configs set."""

    max_epochs: int = at_least(-1)  # -1: no limit (then max_steps decides)
    min_epochs: Optional[int] = at_least(0)
    max_steps: int = at_least(-1)
    num_nodes: int = at_least(1)
    check_val_every_n_epoch: Optional[int] = at_least(1)
    log_every_n_steps: int = at_least(1)
    num_sanity_val_steps: int = at_least(-1)
    gradient_clip_val: Optional[float] = at_least(0)
    accumulate_grad_batches: int = at_least(1)
    sync_batchnorm: bool = MISSING
    enable_progress_bar: bool = MISSING
    accelerator: str = MISSING


@dataclass
class DataSchema:
    """Keys every dataset config has (trainlab.data.base.ImageDataModule)."""

    batch_size: int = at_least(1)
    num_workers: int = at_least(0)
    image_size: int = at_least(1)
    in_channels: int = one_of(1, 3)
    num_classes: Optional[int] = at_least(1)
    seed: int = MISSING
    pipeline: str = one_of("torchvision", "batched")


@dataclass
class OptimSchema:
    """Keys most torch.optim configs have, plus trainlab's own."""

    lr: float = at_least(0)
    weight_decay: float = at_least(0)
    momentum: float = at_least(0)
    no_decay: bool = MISSING


SCHEMAS: dict[str, type] = {
    "train": TrainSchema,
    "trainer": TrainerSchema,
    "data": DataSchema,
    "optim": OptimSchema,
    "perf": PerfSchema,
}


def register() -> None:
    """Store the schemas in Hydra's ConfigStore (schema/<section>), where validation reads them."""
    store = ConfigStore.instance()
    for name, schema in SCHEMAS.items():
        store.store(group="schema", name=name, node=schema)


def validate(cfg: DictConfig) -> None:
    """Raise a ConfigError naming the first key whose value has the wrong type or is out of range."""
    for name in SCHEMAS:
        section = cfg if name == "train" else cfg.get(name)
        if isinstance(section, DictConfig):
            _validate_section(name, section)


def _validate_section(name: str, section: DictConfig) -> None:
    schema_node = ConfigStore.instance().load(f"schema/{name}.yaml").node
    schema = OmegaConf.get_type(schema_node)
    prefix = "" if name == "train" else f"{name}."
    values = OmegaConf.to_container(section, resolve=True)
    for spec in dataclasses.fields(schema):
        if spec.name not in values:
            continue
        value = values[spec.name]
        key = f"{prefix}{spec.name}"
        try:
            OmegaConf.merge(schema_node, {spec.name: value})
            valid = _in_range(value, spec.metadata)
        except ValidationError:
            valid = False
        if not valid:
            raise ConfigError(f"{key}={value!r} is invalid: expected {_expected(spec)}. {_where(name)}")


def _in_range(value: Any, rules: Mapping[str, Any]) -> bool:
    if value is None or isinstance(value, bool):
        return True
    if "min" in rules and float(value) < rules["min"]:
        return False
    return "choices" not in rules or value in rules["choices"]


def _expected(spec: dataclasses.Field) -> str:
    kind = spec.type if isinstance(spec.type, str) else getattr(spec.type, "__name__", str(spec.type))
    text = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}.get(
        kind.replace("Optional[", "").rstrip("]"), kind
    )
    if "min" in spec.metadata:
        text += f" >= {spec.metadata['min']}"
    if "choices" in spec.metadata:
        text = f"one of {', '.join(str(c) for c in spec.metadata['choices'])}"
    return text + (", or null" if kind.startswith("Optional[") else "")


def _where(section: str) -> str:
    origin = "conf/train.yaml" if section == "train" else where_defined(section)
    return f"Fix it on the command line or in {origin}."
