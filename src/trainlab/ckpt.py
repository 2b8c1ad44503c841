"""`python -m trainlab.ckpt show FILE`: what a checkpoint holds, like printing optimizer.state_dict().

Prints the epoch and step, the monitored scores, the run's config choices, every optimizer's param
groups (name, lr and options, parameter count) and the state it keeps per parameter (momentum buffers,
Adam moments and step counts, with shapes), and the schedulers' state.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from trainlab.checkpoints.io import load_checkpoint
from trainlab.compat import checkpoint_position
from trainlab.errors import exit_code

CONFIG_KEYS = ("data", "model", "loss", "optim", "scheduler")


def describe(checkpoint: Mapping[str, Any], path: Path) -> str:
    lines = [
        f"checkpoint {path}",
        f"  {checkpoint_position(checkpoint)} (epochs counted from 1)",
    ]
    lines += _scores(checkpoint.get("callbacks", {}))
    config = checkpoint.get("trainlab_config") or {}
    for key in CONFIG_KEYS:
        node = config.get(key)
        if isinstance(node, Mapping):
            lines.append(f"  {key}: {_summary(node)}")
    params = checkpoint["state_dict"]
    lines.append(f"  state_dict: {len(params)} tensors, {sum(t.numel() for t in params.values()):,} values")
    for i, optimizer in enumerate(checkpoint.get("optimizer_states", [])):
        lines += _optimizer(i, optimizer)
    for i, scheduler in enumerate(checkpoint.get("lr_schedulers", [])):
        shown = {k: v for k, v in scheduler.items() if not k.startswith("_") and k != "lr_lambdas"}
        lines.append(f"  scheduler {i}: {_fmt(shown)}")
    return "\n".join(lines)


def _scores(callbacks: Mapping[str, Any]) -> list[str]:
    lines = []
    for state in callbacks.values():
        if isinstance(state, Mapping) and state.get("monitor"):
            score = state.get("best_model_score")
            value = f"{float(score):.4f}" if score is not None else "n/a"
            lines.append(
                f"  best {state['monitor']} = {value} ({Path(str(state.get('best_model_path'))).name})"
            )
    return lines


def _summary(node: Mapping[str, Any]) -> str:
    target = node.get("_target_") or (node.get("scheduler") or {}).get("_target_", "none")
    options = {k: v for k, v in node.items() if not k.startswith("_") and not isinstance(v, Mapping | list)}
    return f"{target} {_fmt(options)}"


def _optimizer(index: int, state_dict: Mapping[str, Any]) -> list[str]:
    lines = [f"  optimizer {index}:"]
    state = state_dict.get("state", {})
    for group in state_dict.get("param_groups", []):
        options = {k: v for k, v in group.items() if k not in ("params", "name")}
        lines.append(f"    group {group.get('name', '?')!r}: {len(group['params'])} params, {_fmt(options)}")
        for param_id in group["params"][:3]:
            kept = state.get(param_id, {})
            described = ", ".join(f"{k} {_shape(v)}" for k, v in kept.items()) or "no state yet"
            lines.append(f"      param {param_id}: {described}")
        if len(group["params"]) > 3:
            lines.append(f"      ... {len(group['params']) - 3} more")
    return lines


def _shape(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"{tuple(value.shape)}" if value.ndim else f"= {value.item():g}"
    return f"= {value}"


def _fmt(options: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={_short(v)}" for k, v in options.items())


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, torch.Tensor):
        return f"tensor{tuple(value.shape)}"
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) > 4:
        return f"[{len(value)} items]"
    return str(value)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainlab.ckpt", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("show", help="print what a checkpoint holds")
    show.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    return exit_code(lambda: print(describe(load_checkpoint(args.file), args.file)))


if __name__ == "__main__":
    sys.exit(main())
