import pytest
import torch
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from trainlab.data.datasets import TensorImageDataset
from trainlab.data.sampling import EpochShuffleSampler, ResumableDataLoader


def dataset() -> TensorImageDataset:
    images = torch.arange(40 * 3 * 8 * 8, dtype=torch.int64).remainder(256).to(torch.uint8).view(40, 3, 8, 8)
    augment = v2.Compose([v2.RandomCrop(8, padding=2), v2.ToDtype(torch.float32, scale=True)])
    return TensorImageDataset(images, torch.arange(40) % 4, augment)


def epoch_batches(
    num_workers: int = 0, epoch: int = 0, seed: int = 3, noise: bool = False
) -> list[torch.Tensor]:
    sampler = EpochShuffleSampler(40, seed)
    sampler.set_epoch(epoch)
    if noise:
        torch.rand(123)  # whatever the global RNG did before must not matter
    loader = DataLoader(dataset(), batch_size=8, sampler=sampler, num_workers=num_workers)
    return [images for images, _ in loader]


def test_order_depends_on_seed_and_epoch_only():
    a = list(EpochShuffleSampler(40, 3))
    assert a == list(EpochShuffleSampler(40, 3)) and sorted(i for i, _ in a) == list(range(40))
    other_epoch = EpochShuffleSampler(40, 3)
    other_epoch.set_epoch(1)
    assert [i for i, _ in other_epoch] != [i for i, _ in a]
    assert [i for i, _ in EpochShuffleSampler(40, 4)] != [i for i, _ in a]


def test_augmentations_ignore_the_global_rng_and_the_worker_count():
    reference = epoch_batches()
    for other in (epoch_batches(noise=True), epoch_batches(num_workers=2)):
        assert all(torch.equal(x, y) for x, y in zip(reference, other, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(reference, epoch_batches(epoch=1), strict=True))


def test_resume_mid_epoch_continues_with_the_remaining_batches():
    full = epoch_batches(epoch=2)
    done = {"n": 0}
    loader = ResumableDataLoader(
        dataset(), batch_size=8, sampler=EpochShuffleSampler(40, 3), batches_done=lambda: done["n"]
    )
    loader.sampler.set_epoch(2)
    done["n"] = 2
    state = loader.state_dict()
    assert state == {"epoch": 2, "batches_done": 2, "samples_done": 16}

    resumed = ResumableDataLoader(
        dataset(), batch_size=8, sampler=EpochShuffleSampler(40, 3), batches_done=lambda: 0
    )
    resumed.load_state_dict(state)
    resumed.sampler.set_epoch(2)  # Lightning does this at the epoch start
    rest = [images for images, _ in resumed]
    assert len(rest) == 3 and all(torch.equal(x, y) for x, y in zip(full[2:], rest, strict=True))
    assert len([b for b in resumed]) == 5  # the skip applies once


def test_epoch_end_state_starts_the_next_epoch_afresh():
    loader = ResumableDataLoader(
        dataset(), batch_size=8, sampler=EpochShuffleSampler(40, 3), batches_done=lambda: 5
    )
    loader.load_state_dict({"epoch": 1, "batches_done": 5})
    assert len(list(loader)) == 5


def test_the_epoch_is_read_when_the_first_batch_is_taken_not_when_the_iterator_is_made():
    """Lightning builds a resumed epoch's iterator before setting the epoch; workers must not start early."""
    epoch = {"now": 0}
    sampler = EpochShuffleSampler(40, 3, epoch_source=lambda: epoch["now"])
    loader = ResumableDataLoader(
        dataset(), batch_size=8, sampler=sampler, num_workers=2, batches_done=lambda: 0
    )
    iterator = iter(loader)
    epoch["now"] = 2
    first = next(iterator)[0]
    assert torch.equal(first, epoch_batches(epoch=2)[0])


def rank_batches(size: int, batch_size: int, ranks: int, rank: int, epoch: int = 1) -> list[list[tuple]]:
    sampler = EpochShuffleSampler(size, 3, num_replicas=ranks, rank=rank, batch_size=batch_size)
    sampler.set_epoch(epoch)
    keys = list(sampler)
    return [keys[i : i + batch_size] for i in range(0, len(keys), batch_size)]


@pytest.mark.parametrize("size", [1439, 1408, 65, 66])
def test_ranks_together_take_the_single_process_batches(size):
    """Batch k of W ranks with batch B == batch k of one process with batch W*B (indices and seeds)."""
    single = rank_batches(size, 64, 1, 0)
    ranks = [rank_batches(size, 32, 2, r) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]), "DDP needs the same number of batches on every rank"
    together = [sorted(a + b) for a, b in zip(*ranks, strict=True)]
    tail = size % 64
    if 0 < tail < 2:  # a last batch too small to give every rank a sample is left out of the epoch
        assert together == [sorted(batch) for batch in single[:-1]]
    else:
        assert together == [sorted(batch) for batch in single]


def test_a_mid_epoch_state_from_two_ranks_resumes_on_one_and_back():
    """The state counts samples of all ranks, so the run continues at the same global position."""

    def loader(ranks: int, rank: int, done: int) -> ResumableDataLoader:
        batch_size = 8 // ranks
        sampler = EpochShuffleSampler(40, 3, num_replicas=ranks, rank=rank, batch_size=batch_size)
        sampler.set_epoch(2)
        return ResumableDataLoader(
            dataset(), batch_size=batch_size, sampler=sampler, batches_done=lambda: done
        )

    full = list(loader(1, 0, 0).sampler)  # (index, sample seed) in the epoch's order
    state = loader(2, 0, done=2).state_dict()  # 2 batches of 4 on each of 2 ranks = 16 samples
    assert state["samples_done"] == 16
    single = loader(1, 0, 0)
    single.load_state_dict(state)
    assert list(single.sampler) == full[16:]

    state = loader(1, 0, done=3).state_dict()
    rest = []
    for rank in range(2):
        resumed = loader(2, rank, 0)
        resumed.load_state_dict(state)
        rest += list(resumed.sampler)
    assert sorted(rest) == sorted(full[24:])
