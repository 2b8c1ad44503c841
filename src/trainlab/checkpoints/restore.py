"""A trained model back from its checkpoint alone: the run config and class names travel inside it.

`trainlab.eval` and `trainlab.predict` share this: read `key=value` arguments, load a trainlab
checkpoint, apply config overrides (e.g. `data.root=...` on another machine), rebuild the network and
the loss (which reads predictions out of the network's outputs) and load the trained weights.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from trainlab.checkpoints.io import load_checkpoint
from trainlab.core.build import build
from trainlab.core.module import ClassifierModule
from trainlab.errors import ConfigError, TrainlabError


def parse_key_values(argv: Sequence[str], options: Mapping[str, str | None], usage: str) -> tuple:
    """(options, config overrides) from `key=value` words.

    Keys in `options` are the command's own (a None default means required); dotted keys such as
    `data.root=DIR` override the checkpoint's run config.
    """
    chosen: dict[str, str | None] = dict(options)
    overrides: list[str] = []
    for word in argv:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise ConfigError(f"{word!r} is not key=value. Usage: {usage}")
        if key in options:
            chosen[key] = value
        elif "." in key:
            overrides.append(word)
        else:
            raise ConfigError(f"Unknown option {key!r}. Usage: {usage}")
    missing = [key for key, value in chosen.items() if value is None]
    if missing:
        raise ConfigError(f"{', '.join(missing)} is required. Usage: {usage}")
    return chosen, overrides


def load_run_checkpoint(path: Path) -> tuple[dict[str, Any], DictConfig, list[str]]:
    """(checkpoint, run config, class names) of a checkpoint that trainlab wrote."""
    checkpoint = load_checkpoint(path)
    config = checkpoint.get("trainlab_config")
    if not isinstance(config, Mapping) or "model" not in config:
        raise TrainlabError(
            f"{path} holds no trainlab run config (trainlab_config): it was not written by "
            "`python -m trainlab`, so the model cannot be rebuilt from it."
        )
    cfg = OmegaConf.create(dict(config))
    num_classes = int(cfg.data.num_classes)
    classes = [str(c) for c in checkpoint.get("trainlab_classes") or range(num_classes)]
    if len(classes) != num_classes:
        raise TrainlabError(f"{path}: {len(classes)} class names for {num_classes} classes.")
    return checkpoint, cfg, classes


def apply_overrides(cfg: DictConfig, overrides: Sequence[str], source: Path) -> DictConfig:
    """Dotted `key=value` changes to the run config; only keys the run config has are accepted.

    Values are typed by OmegaConf's dotlist parser (YAML: `256` an int, `1e-3` a float, `KEY=` null,
    `${...}` an interpolation of the run config); the key's node is replaced, not merged into.
    """
    for word in overrides:
        key, _, value = word.partition("=")
        if OmegaConf.select(cfg, key, default=_ABSENT) is _ABSENT:
            raise ConfigError(
                f"{key} is not a key of the run config stored in {source}; "
                "`python -m trainlab.ckpt show` lists its groups."
            )
        try:
            parsed = OmegaConf.to_container(OmegaConf.from_dotlist([f"value={value}"]))["value"]
            OmegaConf.update(cfg, key, parsed, merge=False)
        except (OmegaConfBaseException, yaml.YAMLError) as err:
            raise ConfigError(f"Cannot set {key}={value}: {err}") from err
    return cfg


_ABSENT = object()


def rebuild_module(
    checkpoint: Mapping[str, Any],
    cfg: DictConfig,
    classes: Sequence[str],
    source: Path,
    class_counts: Sequence[int] | None = None,
) -> ClassifierModule:
    """The network and loss of the run with the trained weights, in eval mode.

    Class counts only matter for `auto` class weights, which the checkpoint's own buffers replace.
    """
    num_classes = len(classes)
    net = build("model", cfg.model)
    loss = build("loss", cfg.loss, num_classes=num_classes, class_counts=class_counts or [1] * num_classes)
    if loss.task != "classification":
        raise TrainlabError(
            f"{source} is a {loss.task} run (loss={cfg.loss.get('_target_', '?').rsplit('.', 1)[-1]}); "
            "trainlab.eval and trainlab.predict report on classification runs only. Its test metrics "
            "(test/acc: exact-match sequence accuracy, test/cer: character error rate) are in the run's "
            "metrics.json, and its TensorBoard shows decoded validation strings."
        )
    module = ClassifierModule(
        net=net,
        loss=loss,
        optimizer=None,  # not trained here
        num_classes=num_classes,
        class_names=classes,
        config=OmegaConf.to_container(cfg, resolve=True),
        tta=cfg.get("tta"),  # evaluate as the run validated and tested (older runs have no key)
    )
    try:
        module.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as err:
        raise TrainlabError(
            f"The weights in {source} do not fit the model its config builds ({err}). "
            "Was model.* or loss.* overridden?"
        ) from err
    return module.eval()
