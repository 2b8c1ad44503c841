"""Lightning checkpoint I/O that never leaves a truncated file at a checkpoint's final path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from trainlab.tracking.atomic import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save into a temporary sibling, fsync, then rename over the target.

    Lightning's default writes straight into the target, so a kill or a full disk mid-save leaves a
    truncated last.ckpt that only fails later, at resume.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options, got {storage_options!r}")
        atomic_write(Path(path), lambda handle: torch.save(checkpoint, handle))
