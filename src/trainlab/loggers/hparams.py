"""What a run is compared by: its chosen config groups, their key options, and three result metrics.

TensorBoard's HPARAMS tab shows one row per run with these columns; a sweep's runs then compare in one
table. The metric values are not written here: TensorBoard reads each metric from the run's own scalar
series of the same name (the last value), so the table shows what the curves end at.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trainlab.records.catalog import flatten

CHOICE_GROUPS = ("data", "model", "loss", "optim", "scheduler")
HPARAM_METRICS = ("val/acc_best", "val/loss", "test/acc")
# The options of these groups that say how a run trained, beside every scalar of optim/loss/scheduler.
PICKED_KEYS = ("data.batch_size", "data.image_size", "trainer.max_epochs", "trainer.precision", "seed")
SKIPPED_KEYS = frozenset({"_target_", "_partial_", "param_groups", "expression"})

Scalar = bool | int | float | str


def run_hparams(
    config: Mapping[str, Any], choices: Mapping[str, str | None], overrides: Sequence[str] = ()
) -> dict[str, Scalar]:
    """Flat {name: bool|int|float|str} for TensorBoard's hparams plugin (which takes nothing else).

    `choices` are the options picked per config group (Hydra's runtime choices); where a group was not
    picked by name, its class name stands in. The keys of the command line's `overrides` (in a sweep,
    what the sweep varies) come first, in their order, so HPARAMS shows them as its first columns.
    """
    hparams: dict[str, Scalar] = {}
    for override in overrides:
        key, _, text = override.partition("=")
        key = key.lstrip("+~")
        if key.startswith("hydra."):
            continue
        # a config group (callbacks=watch, experiment=...): the option's name; a key: its value as it ran
        value = (choices.get(key) or text) if "." not in key else _select(config, key)
        if value is not None:
            hparams[key] = _scalar(value)
    for group in CHOICE_GROUPS:
        node = config.get(group)
        hparams.setdefault(group, choices.get(group) or _target_name(node))
    for group in ("optim", "loss", "scheduler"):
        node = config.get(group)
        if isinstance(node, Mapping):
            for name, value in flatten(node, group):
                if value is not None and not SKIPPED_KEYS.intersection(name.split(".")):
                    hparams.setdefault(name, _scalar(value))
    for key in PICKED_KEYS:
        value = _select(config, key)
        if value is not None:
            hparams.setdefault(key, _scalar(value))
    return hparams


def _scalar(value: Any) -> Scalar:
    return value if isinstance(value, bool | int | float | str) else str(value)


def _select(config: Mapping[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _target_name(node: Any) -> str:
    target = node.get("_target_") if isinstance(node, Mapping) else None
    return str(target).rsplit(".", 1)[-1] if target else "none"
