"""Batched augmentation: same distribution as torchvision's per-image ops, per-sample, batch-independent."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from trainlab.data.batched import BatchTransform, uniform, uniform_int
from trainlab.data.transforms import ToTensor
from trainlab.errors import ConfigError

N = 20_000
SEEDS = torch.randint(2**62, (N,), generator=torch.Generator().manual_seed(0))


def position_image(size: int = 32) -> torch.Tensor:
    """uint8 (2, size, size): channel 0 holds row + 1, channel 1 column + 1 (0 is padding)."""
    ramp = torch.arange(1, size + 1, dtype=torch.uint8)
    return torch.stack([ramp[:, None].expand(size, size), ramp[None, :].expand(size, size)])


def offsets(crops: torch.Tensor, padding: int) -> torch.Tensor:
    """The (top, left) offset each crop of a padded position image was cut at, as one index top * 9 + left.

    The crop's centre pixel is never padding: it holds (original row + 1, original column + 1).
    """
    centre = crops[:, :, crops.shape[-2] // 2, crops.shape[-1] // 2].long()
    top = centre[:, 0] - 1 - crops.shape[-2] // 2 + padding
    left = centre[:, 1] - 1 - crops.shape[-1] // 2 + padding
    return top * (2 * padding + 1) + left


def frequencies(values: torch.Tensor, bins: int) -> torch.Tensor:
    return torch.bincount(values, minlength=bins).double() / len(values)


def test_uniform_is_uniform_and_streams_are_independent():
    a, b = uniform(SEEDS, 0), uniform(SEEDS, 10)
    assert a.min() >= 0 and a.max() < 1
    assert frequencies((a * 10).long(), 10).sub(0.1).abs().max() < 0.006
    assert abs(torch.corrcoef(torch.stack([a, b]))[0, 1]) < 0.03
    assert torch.equal(uniform(SEEDS[:5], 0), a[:5])  # a pure function of (seed, stream)
    assert uniform_int(SEEDS, 0, 9).max() == 8


def test_random_crop_with_padding_matches_torchvision_in_distribution():
    image = position_image()
    ours = BatchTransform.from_transforms([v2.RandomCrop(32, padding=4)], "t")
    crops = ours.steps[0](image.expand(N, -1, -1, -1), SEEDS)
    torch.manual_seed(0)
    reference = torch.stack([v2.RandomCrop(32, padding=4)(image) for _ in range(N)])
    ours_freq, ref_freq = frequencies(offsets(crops, 4), 81), frequencies(offsets(reference, 4), 81)
    assert ours_freq.sub(1 / 81).abs().max() < 0.004 and ref_freq.sub(1 / 81).abs().max() < 0.004
    assert (ours_freq - ref_freq).abs().max() < 0.005


@pytest.mark.parametrize(
    ("mode", "fill"), [("constant", 0), ("constant", 7), ("reflect", 0), ("symmetric", 0), ("edge", 0)]
)
def test_a_crop_is_torchvisions_crop_at_the_same_offset(mode, fill):
    images = torch.randint(0, 256, (64, 3, 32, 30), dtype=torch.uint8)
    seeds = SEEDS[:64]
    crop = v2.RandomCrop([28, 32], padding=4, fill=fill, padding_mode=mode)
    crops = BatchTransform.from_transforms([crop], "t").steps[0](images, seeds)
    padded = TF.pad(images, [4, 4, 4, 4], fill=fill, padding_mode=mode)
    top, left = uniform_int(seeds, 0, 32 + 8 - 28 + 1), uniform_int(seeds, 1, 30 + 8 - 32 + 1)
    for i in range(64):
        assert torch.equal(crops[i], TF.crop(padded[i], int(top[i]), int(left[i]), 28, 32))


def test_flip_and_grayscale_rates_and_results_match_torchvision():
    images = torch.randint(0, 256, (N, 3, 4, 4), dtype=torch.uint8)
    flip = BatchTransform.from_transforms([v2.RandomHorizontalFlip(p=0.5)], "t").steps[0](images, SEEDS)
    flipped = (flip != images).flatten(1).any(dim=1)
    assert abs(flipped.double().mean() - 0.5) < 0.015
    assert torch.equal(flip[flipped], images[flipped].flip(-1))
    gray = BatchTransform.from_transforms([v2.RandomGrayscale(p=0.8)], "t").steps[0](images, SEEDS)
    greyed = (gray != images).flatten(1).any(dim=1)
    assert abs(greyed.double().mean() - 0.8) < 0.015
    expected = TF.rgb_to_grayscale(images[greyed][:200], num_output_channels=3)
    assert (gray[greyed][:200].int() - expected.int()).abs().max() <= 1


def test_to_tensor_and_normalize_equal_torchvision_exactly():
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    steps = [ToTensor(), v2.Normalize(mean=[0.49, 0.48, 0.45], std=[0.25, 0.24, 0.26])]
    ours = BatchTransform.from_transforms(steps, "t")(images, SEEDS[:8])
    reference = torch.stack([v2.Compose(steps)(image) for image in images])
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-6)


def test_a_sample_is_augmented_the_same_in_any_batch():
    transform = BatchTransform.from_transforms(
        [v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(), ToTensor()], "t"
    )
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    whole = transform(images, SEEDS[:16])
    order = torch.randperm(16)
    torch.testing.assert_close(transform(images[order], SEEDS[:16][order]), whole[order])
    torch.testing.assert_close(transform(images[3:5], SEEDS[3:5]), whole[3:5])


def test_transforms_without_a_batched_version_are_named():
    with pytest.raises(ConfigError, match=r"data.train_transforms: RandomResizedCrop has no batched version"):
        BatchTransform.from_transforms([v2.RandomResizedCrop(32)], "data.train_transforms")
    with pytest.raises(ConfigError, match="uneven padding"):
        BatchTransform.from_transforms([v2.RandomCrop(32, padding=[1, 2])], "data.train_transforms")
