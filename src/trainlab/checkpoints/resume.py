"""Which checkpoint a run resumes from, read and checked before any training starts.

Lightning reads `ckpt_path` only once fitting has begun and reports a truncated file or another model's
weights as a long traceback from deep inside torch. Here the file is read up front: a broken one is named
with its cause, `ckpt_path=last` steps back to the newest checkpoint that still reads (and says so), and
a checkpoint of another model or optimizer setup is refused with the differing keys, shapes and config
fields. A resume request never silently becomes a fresh start.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from trainlab.checkpoints.io import load_checkpoint
from trainlab.compat import checkpoint_epochs_trained, checkpoint_position
from trainlab.errors import ConfigError, TrainlabError
from trainlab.records.catalog import flatten
from trainlab.records.status import read_status

log = logging.getLogger(__name__)

CONFIG_GROUPS = ("data", "model", "loss", "optim", "scheduler")
MAX_LISTED = 8


def checkpoint_to_resume(ckpt_path: str | None, output_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """(file, contents) that `ckpt_path` names: a .ckpt file, or `last` for this run dir's newest."""
    if ckpt_path is None:
        return None
    if ckpt_path == "last":
        return newest_readable(output_dir / "checkpoints")
    path = Path(ckpt_path).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"ckpt_path={ckpt_path}: {path} does not exist; give the path of a .ckpt file "
            "(runs keep theirs in <run dir>/checkpoints/)."
        )
    return path, load_checkpoint(path)


def nothing_left_to_train(
    path: Path, checkpoint: Mapping[str, Any], trainer: Mapping[str, Any]
) -> str | None:
    """Why resuming from `checkpoint` would train nothing (its run already reached trainer.max_epochs or
    trainer.max_steps of this config), as one line for the user; None when there is training left."""
    epochs = checkpoint_epochs_trained(checkpoint)
    step = int(checkpoint.get("global_step") or 0)
    max_epochs, max_steps = trainer.get("max_epochs"), trainer.get("max_steps")
    if epochs is not None and isinstance(max_epochs, int) and 0 <= max_epochs <= epochs:
        reached = f"trainer.max_epochs={max_epochs}"
    elif isinstance(max_steps, int) and 0 < max_steps <= step:
        reached = f"trainer.max_steps={max_steps}"
    else:
        return None
    run_dir = path.parent.parent
    status = (read_status(run_dir) or {}).get("status", "unknown")
    line = (
        f"nothing left to train: {path} is {checkpoint_position(checkpoint)}, and this config stops at "
        f"{reached}. {run_dir} is left as it is (status: {status}). To train longer, raise "
        f"{reached.split('=')[0]}."
    )
    if not (run_dir / "metrics.json").is_file():
        line += f" Its test did not run: python -m trainlab.eval ckpt_path={path} tests it."
    return line


def newest_readable(directory: Path) -> tuple[Path, dict[str, Any]]:
    """last.ckpt, or when it does not read, the most recently written checkpoint that does."""
    last = directory / "last.ckpt"
    others = sorted(
        (p for p in directory.glob("*.ckpt") if p != last), key=lambda p: p.stat().st_mtime, reverse=True
    )
    candidates = ([last] if last.is_file() else []) + others
    if not candidates:
        raise ConfigError(
            f"ckpt_path=last: {last} does not exist; ckpt_path=last resumes in the run dir named by "
            "hydra.run.dir=<run dir>, which holds no checkpoints."
        )
    problems = []
    for path in candidates:
        try:
            checkpoint = load_checkpoint(path)
        except TrainlabError as err:
            problems.append(str(err))
            continue
        if problems:
            log.warning(
                "ckpt_path=last: %s; resuming from %s instead (after epoch %s, step %s), the newest "
                "checkpoint that reads.",
                " ".join(problems),
                path,
                checkpoint_epochs_trained(checkpoint),
                checkpoint.get("global_step"),
            )
        return path, checkpoint
    raise TrainlabError(
        f"ckpt_path=last: no checkpoint in {directory} can be read: {' '.join(problems)} "
        "Resume from a copy of a good checkpoint with ckpt_path=FILE, or start afresh without ckpt_path."
    )


def check_checkpoint_fits(
    path: Path,
    checkpoint: Mapping[str, Any],
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    config: Mapping[str, Any],
    groups_may_grow: bool = False,
) -> None:
    """Refuse a checkpoint of another network or optimizer setup, naming what differs.

    `groups_may_grow`: a callback moves parameters between groups while training (backbone
    fine-tuning), so group sizes are only comparable once it has run; they are not compared then.
    """
    problems = weight_mismatches(checkpoint["state_dict"], module.state_dict())
    problems += optimizer_mismatches(checkpoint, optimizer, config, groups_may_grow)
    if not problems:
        return
    differing = config_differences(checkpoint.get("trainlab_config") or {}, config)
    raise ConfigError(
        f"Checkpoint {path} does not fit this run: {'; '.join(problems)}. "
        + (f"Config fields that differ from the checkpoint's run: {differing}. " if differing else "")
        + "Resume with the config the checkpoint was trained with (its run dir's config.yaml), "
        "or start a new run without ckpt_path."
    )


def weight_mismatches(saved: Mapping[str, torch.Tensor], current: Mapping[str, torch.Tensor]) -> list[str]:
    missing = sorted(current.keys() - saved.keys())
    unexpected = sorted(saved.keys() - current.keys())
    shapes = [
        f"{key} {tuple(saved[key].shape)} in the checkpoint vs {tuple(current[key].shape)} here"
        for key in current.keys() & saved.keys()
        if tuple(saved[key].shape) != tuple(current[key].shape)
    ]
    problems = []
    if missing:
        problems.append(f"weights missing from the checkpoint: {_listed(missing)}")
    if unexpected:
        problems.append(f"weights this model does not have: {_listed(unexpected)}")
    if shapes:
        problems.append(f"shapes differ: {_listed(sorted(shapes))}")
    return problems


def optimizer_mismatches(
    checkpoint: Mapping[str, Any],
    optimizer: torch.optim.Optimizer,
    config: Mapping[str, Any],
    groups_may_grow: bool,
) -> list[str]:
    states = checkpoint.get("optimizer_states")
    if not states:
        return ["it holds weights only (no optimizer state), so training cannot continue from it"]
    saved_target = ((checkpoint.get("trainlab_config") or {}).get("optim") or {}).get("_target_")
    target = (config.get("optim") or {}).get("_target_")
    if saved_target and target and saved_target != target:
        return [f"its optimizer is {saved_target}, this run's is {target}"]
    saved_sizes = [len(group["params"]) for group in states[0].get("param_groups", [])]
    sizes = [len(group["params"]) for group in optimizer.param_groups]
    if saved_sizes != sizes and not groups_may_grow:
        return [f"optimizer parameter groups hold {saved_sizes} parameters in the checkpoint, {sizes} here"]
    return []


def config_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    old = {k: v for k, v in flatten(saved) if k.split(".")[0] in CONFIG_GROUPS}
    new = {k: v for k, v in flatten(current) if k.split(".")[0] in CONFIG_GROUPS}
    keys = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    return _listed([f"{k}: {old.get(k, '<unset>')} -> {new.get(k, '<unset>')}" for k in keys])


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")
