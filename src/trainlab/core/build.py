"""Config groups -> objects, with errors that name the group and option instead of a Hydra traceback."""

from __future__ import annotations

import pydoc
import re
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

import trainlab.conf
from trainlab.errors import ConfigError, TrainlabError, nearest


def chosen_option(group: str) -> str | None:
    """The option picked for a config group in this run (e.g. 'cifar10' for data), if under Hydra."""
    if not HydraConfig.initialized():
        return None
    return HydraConfig.get().runtime.choices.get(group)


def build(group: str, node: DictConfig, **kwargs: Any) -> Any:
    """instantiate(node) with plain Python containers (lists, dicts) for every argument.

    Plain containers matter: OmegaConf objects would otherwise end up inside optimizer state and
    checkpoints, which then cannot be loaded with torch.load(weights_only=True).
    """
    try:
        return instantiate(node, _convert_="all", **kwargs)
    except MissingMandatoryValue as err:
        raise ConfigError(
            f"{err.full_key} has no value: {where_defined(group)} leaves it to you (???). "
            f"Set it on the command line, e.g. {err.full_key}=..."
        ) from None
    except InstantiationException as err:
        cause = _user_error(err)
        if cause is not None:
            raise cause from None
        hint = unexpected_key_hint(err, node, group) or interpolation_hint(err, node, group)
        raise config_error(group, err, hint) from err


def shipped_options(group: str) -> list[str]:
    """The options trainlab ships for a config group: the file names in trainlab/conf/<group>/."""
    return sorted(p.stem for p in (Path(trainlab.conf.__file__).parent / group).glob("*.yaml"))


def shipped_options_for(group: str, task: str) -> list[str]:
    """Shipped options of `group` whose class serves `task` (the `task` attribute of each config's
    _target_ class; classes without one are classification ones)."""
    names = []
    for name in shipped_options(group):
        node = OmegaConf.load(Path(trainlab.conf.__file__).parent / group / f"{name}.yaml")
        target = pydoc.locate(str(node.get("_target_")))
        if target is None:
            continue
        if getattr(target, "task", "classification") == task:
            names.append(name)
    return names


def where_defined(group: str) -> str:
    option = chosen_option(group)
    return f"conf/{group}/{option}.yaml" if option else f"the '{group}' config"


def config_error(group: str, err: BaseException, hint: str = "") -> ConfigError:
    """A build failure of one group as a user error that names the file to look at. A class that refused
    a value (ValueError) is quoted in its own words, not inside Hydra's wrapper."""
    cause = err.__cause__ if isinstance(err, InstantiationException) else None
    reason = str(cause) if isinstance(cause, ValueError) else str(err)
    return ConfigError(
        f"Cannot build {group} from {where_defined(group)}: {reason}.{hint} Check the {group}.* values."
    )


def interpolation_hint(err: BaseException, node: DictConfig, group: str) -> str:
    """For a value the class refused that the config takes from another key (`image_size:
    ${data.image_size}`): that key, which is the one to change."""
    if not isinstance(node, DictConfig):
        return ""
    raw = OmegaConf.to_container(node, resolve=False)
    sources = [
        f" {group}.{key} is {value}: set {value[2:-1]}."
        for key, value in raw.items()
        if isinstance(value, str)
        and re.fullmatch(r"\$\{[\w.]+\}", value)
        and re.search(rf"\b{key}\b", str(err))
    ]
    return "".join(sources)


def unexpected_key_hint(err: BaseException, node: DictConfig, group: str) -> str:
    """For `+optim.wd=0.1` (a key the class does not take): the key of the config it was meant for."""
    found = re.search(r"unexpected keyword argument '(\w+)'", str(err))
    if not found or not isinstance(node, DictConfig):
        return ""
    key = found.group(1)
    close = nearest(key, [str(k) for k in node if not str(k).startswith("_") and str(k) != key])
    return f" Did you mean {group}.{close}?" if close else ""


def _user_error(err: BaseException) -> TrainlabError | None:
    seen = err
    while seen is not None:
        if isinstance(seen, TrainlabError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
