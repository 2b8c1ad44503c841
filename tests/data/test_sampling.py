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
    assert state == {"epoch": 2, "batches_done": 2}

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
