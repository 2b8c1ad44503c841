"""OmegaConf resolvers the shipped configs use, registered when trainlab is imported."""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from trainlab.errors import ConfigError


def gpu_precision() -> str:
    """bf16-mixed where the GPU supports bf16 (NVIDIA Ampere and later), else 16-mixed.

    Resolved where the run trains, not where it was submitted: a SLURM job composed on a login node
    without a GPU still picks the precision of the GPU it lands on. Without any GPU it names bf16-mixed
    and the trainer's own "no GPU" error says what is wrong.
    """
    import torch

    if torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        return "16-mixed"
    return "bf16-mixed"


def slurm_tasks_per_node(devices: Any) -> int:
    """SLURM starts one task per device; it cannot count "all GPUs" (-1 / auto) for us."""
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise ConfigError(
            f"trainer.devices={devices!r}: a SLURM job needs the number of devices per node, e.g. "
            "trainer.devices=4 (not -1 or auto, which only the node itself can count)."
        )
    return devices


def slurm_gpus_per_node(accelerator: str, devices: Any) -> int | None:
    """GPUs to ask SLURM for: one per task, none for a CPU run."""
    tasks = slurm_tasks_per_node(devices)
    return None if accelerator == "cpu" else tasks


RESOLVERS = {
    "trainlab.gpu_precision": gpu_precision,
    "trainlab.slurm_tasks_per_node": slurm_tasks_per_node,
    "trainlab.slurm_gpus_per_node": slurm_gpus_per_node,
}


def register() -> None:
    for name, resolver in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)
