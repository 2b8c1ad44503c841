"""Parameter groups from config: regex patterns over parameter names, each group with its own options.

    optim:
      param_groups:
        - {name: features, params: "^net\\.features\\.", lr_scale: 0.1}
        - {name: head, params: "^net\\.classifier\\.", lr: 0.01, weight_decay: 0.0}
      no_decay: true

Patterns are matched (re.search) against `named_parameters()` names of the LightningModule (the network's
start with `net.`, a loss's own parameters with `loss.`). The first matching group takes a parameter,
unmatched parameters form the group "default", a pattern that matches nothing is an error. `lr_scale`
multiplies the optimizer's lr; any other key is passed to torch as a per-group option. `no_decay` puts
biases and normalization weights (every parameter with fewer than 2 dimensions) of each group into a
"<group>_no_decay" sibling with weight_decay 0.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from torch import nn

from trainlab.errors import ConfigError

DEFAULT_GROUP = "default"


def build_param_groups(
    named_parameters: Iterable[tuple[str, nn.Parameter]],
    specs: Sequence[Mapping[str, Any]] = (),
    no_decay: bool = False,
    base_lr: float | None = None,
) -> list[dict[str, Any]]:
    """torch param-group dicts (each with a "name") covering every trainable parameter exactly once."""
    compiled = [_compile(i, spec) for i, spec in enumerate(specs)]
    members: dict[str, list[tuple[str, nn.Parameter]]] = {name: [] for name, _, _ in compiled}
    members.setdefault(DEFAULT_GROUP, [])
    for pname, param in named_parameters:
        if not param.requires_grad:
            continue
        group = next((name for name, pattern, _ in compiled if pattern.search(pname)), DEFAULT_GROUP)
        members[group].append((pname, param))
    for name, pattern, _ in compiled:
        if not members[name]:
            raise ConfigError(
                f"optim.param_groups: group '{name}' (params: '{pattern.pattern}') matches no trainable "
                "parameter, or only ones an earlier group took. Parameter names look like "
                "'net.features.0.weight'; print them with model.named_parameters()."
            )
    options = {name: _options(name, opts, base_lr) for name, _, opts in compiled}
    options[DEFAULT_GROUP] = {}
    groups = []
    for name, params in members.items():
        if params:
            groups.extend(_split_decay(name, params, options[name], no_decay))
    return groups


def _compile(index: int, spec: Mapping[str, Any]) -> tuple[str, re.Pattern[str], dict[str, Any]]:
    if "params" not in spec:
        raise ConfigError(f"optim.param_groups[{index}] has no 'params' regex: {dict(spec)}.")
    name = str(spec.get("name", f"group{index}"))
    if name == DEFAULT_GROUP:
        raise ConfigError(
            f"optim.param_groups[{index}]: the name '{DEFAULT_GROUP}' is kept for unmatched parameters."
        )
    try:
        pattern = re.compile(spec["params"])
    except re.error as err:
        raise ConfigError(
            f"optim.param_groups[{index}].params='{spec['params']}' is not a valid regex: {err}."
        ) from err
    return name, pattern, {k: v for k, v in spec.items() if k not in ("name", "params")}


def _options(name: str, options: dict[str, Any], base_lr: float | None) -> dict[str, Any]:
    options = dict(options)
    if "lr_scale" in options:
        if "lr" in options:
            raise ConfigError(f"optim.param_groups '{name}' sets both lr and lr_scale: keep one.")
        if base_lr is None:
            raise ConfigError(f"optim.param_groups '{name}': lr_scale needs optim.lr to be set.")
        options["lr"] = base_lr * float(options.pop("lr_scale"))
    return options


def _split_decay(
    name: str, params: list[tuple[str, nn.Parameter]], options: dict[str, Any], no_decay: bool
) -> list[dict[str, Any]]:
    if not no_decay:
        return [{"name": name, "params": [p for _, p in params], **options}]
    decayed = [p for _, p in params if p.ndim >= 2]
    exempt = [p for _, p in params if p.ndim < 2]
    groups = []
    if decayed:
        groups.append({"name": name, "params": decayed, **options})
    if exempt:
        groups.append({"name": f"{name}_no_decay", "params": exempt, **options, "weight_decay": 0.0})
    return groups
