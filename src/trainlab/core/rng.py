"""Random-number-generator state in checkpoints, so a resumed run draws what the uninterrupted one would.

Lightning restores model, optimizer, scheduler and loop state, but not the RNGs: a resumed run would
reshuffle its next epoch and redraw its augmentations from a fresh seed. The state is captured when the
checkpoint is written (at an epoch end) and restored before the next epoch's loader draws its order.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def capture_rng_state() -> dict[str, Any]:
    """Plain tensors, ints and lists only, so torch.load(weights_only=True) accepts the checkpoint."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    numpy_state = [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)]
    version, internal, gauss = random.getstate()
    state = {"python": [version, list(internal), gauss], "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
