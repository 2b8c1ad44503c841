"""Training order and augmentation randomness that depend only on (seed, epoch, position).

torch's default RandomSampler draws each epoch's order from the global RNG, and augmentations draw from
whichever RNG the process (or loader worker) happens to have, so neither survives a resume mid-epoch,
and the worker count changes the result. Here:
- EpochShuffleSampler permutes with its own generator seeded by (seed, epoch), and also hands every
  sample a seed of its own; datasets seed their transform with it (see datasets.py).
- ResumableDataLoader implements Lightning's state_dict/load_state_dict protocol: a checkpoint written
  mid-epoch records how many batches of the epoch were trained, and the resumed loader starts after them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

SEED_SPAN = 2**62


class EpochShuffleSampler(Sampler[tuple[int, int]]):
    """Yields (index, sample_seed) in an order fixed by (seed, epoch); Lightning calls set_epoch()."""

    def __init__(self, size: int, seed: int, epoch_source: Callable[[], int] | None = None) -> None:
        self.size = size
        self.seed = seed
        self.epoch_source = epoch_source
        self._epoch = 0
        self._resume: tuple[int, int] | None = None  # (epoch, samples to skip), used once

    @property
    def epoch(self) -> int:
        """The trainer's epoch when it tells us (Lightning builds a resumed epoch's iterator before its
        set_epoch() call), else the last set_epoch() value."""
        return self.epoch_source() if self.epoch_source is not None else self._epoch

    def set_epoch(self, epoch: int) -> None:
        self._epoch = epoch

    def resume_at(self, epoch: int, skip: int) -> None:
        self._resume = (epoch, skip)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator)
        seeds = torch.randint(SEED_SPAN, (self.size,), generator=generator)
        start = 0
        if self._resume is not None and self._resume[0] == self.epoch:
            start = self._resume[1]
        self._resume = None
        yield from zip(order[start:].tolist(), seeds[start:].tolist(), strict=True)

    def __len__(self) -> int:
        return self.size


class ResumableDataLoader(DataLoader):
    """A DataLoader over an EpochShuffleSampler whose position survives a checkpoint.

    `batches_done` reports how many batches of the current epoch the trainer has taken (the loader itself
    cannot tell: Lightning prefetches one batch ahead).
    """

    def __init__(self, *args: Any, batches_done: Callable[[], int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches_done = batches_done

    def __iter__(self) -> Iterator[Any]:
        # Worker processes receive their first indices as soon as an iterator exists, and Lightning
        # creates a resumed epoch's iterator before it sets the epoch: start on the first batch instead.
        return _StartOnFirstBatch(super().__iter__)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": getattr(self.sampler, "epoch", 0), "batches_done": int(self.batches_done())}

    def load_state_dict(self, state: dict[str, int]) -> None:
        done = state.get("batches_done", 0)
        # mid-epoch only: at an epoch end the next epoch starts afresh. A sampler wrapped for distributed
        # training (no resume_at) restarts its epoch.
        if 0 < done < len(self) and isinstance(self.sampler, EpochShuffleSampler):
            self.sampler.resume_at(state["epoch"], done * self.batch_size)


class _StartOnFirstBatch:
    """An iterator that builds the real one when the first item is asked for."""

    def __init__(self, start: Callable[[], Iterator[Any]]) -> None:
        self._start = start
        self._iterator: Iterator[Any] | None = None

    def __iter__(self) -> _StartOnFirstBatch:
        return self

    def __next__(self) -> Any:
        if self._iterator is None:
            self._iterator = self._start()
        return next(self._iterator)
