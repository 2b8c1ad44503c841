"""data=digit_strings: real digit images composed into strings, train/val/test from disjoint digits."""

from __future__ import annotations

import pytest
import torch

from trainlab.data.digit_strings import PAD, DigitStringsDataModule
from trainlab.errors import ConfigError


def module(**overrides) -> DigitStringsDataModule:
    options = {"batch_size": 8, "num_strings": (300, 50, 50)} | overrides
    dm = DigitStringsDataModule(**options)
    dm.setup()
    return dm


def test_strings_have_padded_labels_of_the_configured_lengths():
    dm = module(min_length=2, max_length=5)
    image, label = dm.splits.train[0]
    assert image.shape == (1, 16, 80) and label.shape == (5,)
    train = torch.stack([dm.splits.train[(i, 1000 + i)][1] for i in range(200)])
    labels = torch.cat([train, dm.splits.val.labels])
    lengths = (labels != PAD).sum(dim=1)
    assert lengths.min() == 2 and lengths.max() == 5
    assert ((labels == PAD).long().diff(dim=1) >= 0).all(), "padding only after a string's end"
    assert labels[labels != PAD].min() >= 0 and labels.max() <= 9


def test_the_same_seed_composes_the_same_strings_and_another_seed_others():
    a, b, c = module(), module(), module(split_seed=1)
    assert torch.equal(a.splits.test.images, b.splits.test.images)
    assert not torch.equal(a.splits.test.images, c.splits.test.images)


def test_training_strings_follow_the_sample_seed_so_every_epoch_reads_new_ones():
    train = module().splits.train
    first, again, other = train[(3, 77)], train[(3, 77)], train[(3, 78)]
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])


def test_train_val_and_test_strings_use_disjoint_digit_images(monkeypatch):
    """The three sets draw from disjoint pools of the 1,797 digit images (a stratified split)."""
    pools: dict[int, set[bytes]] = {}
    original = DigitStringsDataModule.compose

    def spy(self, digits, labels, generator):
        pools.setdefault(id(digits), {digits[i].numpy().tobytes() for i in range(len(digits))})
        return original(self, digits, labels, generator)

    monkeypatch.setattr(DigitStringsDataModule, "compose", spy)
    dm = module()
    dm.splits.train[(0, 5)]
    val, test, train = pools.values()  # in the order they were composed
    assert len(train) > len(val) > 300 and len(test) > 300
    assert not (train & val) and not (train & test) and not (val & test)


def test_class_counts_count_the_training_digit_images():
    dm = module()
    assert sum(dm.class_counts) == len(dm.splits.train.digits) and len(dm.class_counts) == 10


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"width": 40}, "data.width=40 cannot hold 6 digits"),
        ({"min_length": 4, "max_length": 2}, r"data.min_length/max_length=\[4, 2\]"),
        ({"digit_height": (10, 20)}, r"data.digit_height=\[10, 20\].*at most 16"),
        ({"num_strings": (10, 0, 5)}, r"data.num_strings=\[10, 0, 5\]"),
    ],
)
def test_bad_settings_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        DigitStringsDataModule(batch_size=8, **overrides)
