"""What Hydra refuses on the command line, as one `error:` paragraph with the key that fits.

Hydra's own reports are several lines of its internals, and its hint for a misspelled key
("To append to your config use +optimizer=adam") adds a key that nothing reads: the run then trains
with the option it was meant to replace. Here a key that is not in the config gets the nearest valid
key instead, an unknown option the nearest option, and a run dir that cannot be created the setting
that names it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import yaml
from hydra.errors import CompactHydraException, MissingConfigException, OverrideParseException
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

from trainlab.compat import report_hydra_errors
from trainlab.core.build import shipped_options
from trainlab.errors import nearest


def install() -> None:
    """Explain Hydra's start-up errors with `explain` (see trainlab.compat.report_hydra_errors)."""
    report_hydra_errors(explain)


def explain(err: BaseException) -> str | None:
    """One paragraph for an error Hydra raised before the run started, or None to let Hydra report it."""
    if isinstance(err, MissingConfigException) and err.missing_cfg_file and err.options is not None:
        return unknown_option(err.missing_cfg_file, list(err.options))
    if isinstance(err, MissingConfigException) and "/" in (err.missing_cfg_file or ""):
        # an option in a list (`logger=[mlfow,wandb]`): Hydra names the file but not the options
        group = err.missing_cfg_file.rpartition("/")[0]
        if shipped_options(group):
            return unknown_option(err.missing_cfg_file, shipped_options(group))
    if isinstance(err.__cause__, ConfigKeyError | ConfigAttributeError):
        return unknown_key(err, err.__cause__)
    yaml_error = next((e for e in chain(err) if isinstance(e, yaml.MarkedYAMLError)), None)
    if yaml_error is not None:
        return bad_yaml(yaml_error)
    os_error = next((e for e in chain(err) if isinstance(e, OSError)), None)
    if os_error is not None and _raised_by_hydra(err.__traceback__):
        return unusable_run_dir(os_error, multirun=bool({"-m", "--multirun"} & set(sys.argv)))
    if isinstance(err, OverrideParseException):
        return f"Cannot read the override {err.override}: {one_paragraph(str(err))}"
    if isinstance(err, CompactHydraException):
        return one_paragraph(str(err))
    return None


def unknown_option(missing: str, options: Sequence[str]) -> str:
    group, _, name = missing.rpartition("/")
    close = nearest(name, options)
    hint = f" Did you mean {group}={close}?" if close else ""
    listing = ", ".join(options)
    return f"{group}={name} is not an option of the {group} config group.{hint} The options: {listing}."


def unknown_key(err: BaseException, cause: ConfigKeyError | ConfigAttributeError) -> str:
    """A key that is not in the composed config: `optim.learning_rate=0.1`, or `optimizer=adam`."""
    full_key = str(cause.full_key or cause.key)
    typed = re.search(r"use \+(\S+)", str(err))
    line = typed.group(1) if typed else full_key
    value = line.partition("=")[2]
    parent, _, leaf = full_key.rpartition(".")
    keys = [
        str(k) for k in getattr(cause.parent_node, "keys", list)() if str(k) != "hydra" and str(k)[0] != "_"
    ]
    if parent and not keys:  # an empty mapping that takes keys of the user's own (logger.mlflow.tags)
        return (
            f"{line}: {parent} holds no key {leaf!r} yet, and Hydra adds a key only when told to: write "
            f"+{line}, or give the whole mapping, {parent}={{{leaf}:{value or '...'}}}."
        )
    where = f"{parent} has no key {leaf!r}" if parent else f"{leaf!r} is neither a config group nor a key"
    close = nearest(leaf, keys)
    if close:
        fixed = f"{parent + '.' if parent else ''}{close}"
        hint = f" Did you mean {fixed}={value}?" if value else f" Did you mean {fixed}?"
    else:
        hint = ""
    listing = f" The keys{' of ' + parent if parent else ''}: {', '.join(keys)}." if keys else ""
    return (
        f"{line}: {where}, so nothing would read it.{hint}{listing} "
        "`python -m trainlab --cfg job` prints the whole config."
    )


def unusable_run_dir(err: OSError, multirun: bool) -> str:
    """Hydra could not create the run (or sweep) dir, or its log file in it."""
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    path = f" ({err.filename})" if err.filename else ""
    return (
        f"Cannot create or write the run dir{path}: {err.strerror or err}. Set {key} to a folder you can "
        f"write to, e.g. {key}=outputs/my_run."
    )


def bad_yaml(err: yaml.MarkedYAMLError) -> str:
    """A config file that is not valid YAML: file, line and column (counted from 1) and the problem."""
    mark = err.problem_mark or err.context_mark
    where = f"{mark.name}, line {mark.line + 1}, column {mark.column + 1}" if mark else "a config file"
    context = f" ({err.context})" if err.context else ""
    return f"{where}: not valid YAML: {err.problem or err}{context}. Fix the file there."


def chain(err: BaseException) -> list[BaseException]:
    """The error and its causes and contexts, outermost first."""
    seen: list[BaseException] = []
    while err is not None and err not in seen:
        seen.append(err)
        err = err.__cause__ or err.__context__
    return seen


def one_paragraph(text: str) -> str:
    """Hydra's multi-line message on one line, without its config search path listing."""
    text = text.split("Config search path:")[0]
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _raised_by_hydra(tb: TracebackType | None) -> bool:
    """Whether Hydra's own code raised (creating the run or sweep dir, opening its log file), not
    trainlab's task code, which Hydra's job runner also calls."""
    files = []
    while tb is not None:
        files.append(Path(tb.tb_frame.f_code.co_filename).parts)
        tb = tb.tb_next
    first_hydra = next((i for i, parts in enumerate(files) if "hydra" in parts), None)
    return first_hydra is not None and not any("trainlab" in parts for parts in files[first_hydra:])
