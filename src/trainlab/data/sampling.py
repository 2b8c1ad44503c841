"""Training order and augmentation randomness that depend only on (seed, epoch, position).

torch's default RandomSampler draws each epoch's order from the global RNG, and augmentations draw from
whichever RNG the process (or loader worker) happens to have, so neither survives a resume mid-epoch,
and the worker count changes the result. Here:
- EpochShuffleSampler permutes with its own generator seeded by (seed, epoch), and also hands every
  sample a seed of its own; datasets seed their transform with it (see datasets.py).
- Under DDP it deals that one order out to the ranks: rank r takes positions r, r+W, r+2W, ..., so the
  k-th batches of all W ranks together are exactly the k-th global batch of a single process with W
  times the batch size, and the run trains like that single process (trainlab.core.distributed scales an
  uneven last batch's loss to match).
- ResumableDataLoader implements Lightning's state_dict/load_state_dict protocol: a checkpoint written
  mid-epoch records how many samples of the epoch were trained (all ranks together), and the resumed
  loader starts after them, on any number of devices with the same global batch size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler

SEED_SPAN = 2**62


class EpochShuffleSampler(DistributedSampler):
    """Yields (index, sample_seed) in an order fixed by (seed, epoch); Lightning calls set_epoch().

    A DistributedSampler, so Lightning uses it as it is under DDP instead of wrapping it in its own.
    With W ranks and per-rank batches of `batch_size`, the samples of a last global batch smaller than W
    (which some rank could not get one of) are left out of that epoch; every rank then runs the same
    number of batches, which DDP needs.
    """

    def __init__(
        self,
        size: int,
        seed: int,
        epoch_source: Callable[[], int] | None = None,
        num_replicas: int = 1,
        rank: int = 0,
        batch_size: int = 1,
    ) -> None:
        super().__init__(range(size), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.size = size
        self.epoch_source = epoch_source
        tail = size % (batch_size * num_replicas)
        self.epoch_size = size - tail if 0 < tail < num_replicas else size  # samples trained per epoch
        self.num_samples = len(range(rank, self.epoch_size, num_replicas))
        self._resume: tuple[int, int] | None = None  # (epoch, samples of all ranks to skip), used once

    @property
    def current_epoch(self) -> int:
        """The trainer's epoch when it tells us (Lightning builds a resumed epoch's iterator before its
        set_epoch() call), else the last set_epoch() value."""
        return self.epoch_source() if self.epoch_source is not None else self.epoch

    def resume_at(self, epoch: int, skip: int) -> None:
        self._resume = (epoch, skip)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.current_epoch
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(self.size, generator=generator)[: self.epoch_size]
        seeds = torch.randint(SEED_SPAN, (self.size,), generator=generator)[: self.epoch_size]
        start = 0
        if self._resume is not None and self._resume[0] == epoch:
            start = self._resume[1]
        self._resume = None
        mine = slice(start + self.rank, None, self.num_replicas)
        yield from zip(order[mine].tolist(), seeds[mine].tolist(), strict=True)

    def __len__(self) -> int:
        return self.num_samples


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
        sampler = self.sampler
        done = int(self.batches_done())
        ranks = sampler.num_replicas if isinstance(sampler, EpochShuffleSampler) else 1
        epoch = sampler.current_epoch if isinstance(sampler, EpochShuffleSampler) else 0
        return {"epoch": epoch, "batches_done": done, "samples_done": done * self.batch_size * ranks}

    def load_state_dict(self, state: dict[str, int]) -> None:
        sampler = self.sampler
        if not isinstance(sampler, EpochShuffleSampler):
            return
        # samples of all ranks: a run checkpointed on W devices resumes on any other number of them
        done = state.get("samples_done", state.get("batches_done", 0) * self.batch_size)
        if 0 < done < sampler.epoch_size:  # mid-epoch only: at an epoch end the next one starts afresh
            sampler.resume_at(state["epoch"], done)


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
