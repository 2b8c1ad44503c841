"""data.pipeline=batched: raw uint8 batches, augmented after transfer; image folders decoded once."""

from __future__ import annotations

import os
import re

import lightning.pytorch as L
import pytest
import torch
from torchvision.transforms import v2

import trainlab.data.cache
from configs import compose_train
from realformat import CIFAR_CLASSES, write_cifar10_folder, write_image_folder
from trainlab.core.build import build
from trainlab.data.datasets import TensorImageDataset
from trainlab.data.digit_strings import DigitStringsDataModule
from trainlab.data.digits import DigitsDataModule
from trainlab.data.imagefolder import ImageFolderDataModule
from trainlab.data.transforms import ToTensor
from trainlab.errors import ConfigError, DataError

TRAIN = [v2.RandomCrop(32, padding=2), ToTensor(), v2.Normalize(mean=[0.5], std=[0.5])]
EVAL = [ToTensor(), v2.Normalize(mean=[0.5], std=[0.5])]
RESIZED = [v2.Resize([24, 40]), v2.RandomCrop([24, 40], padding=2), v2.RandomGrayscale(0.5), ToTensor()]


def digits(pipeline: str) -> DigitsDataModule:
    dm = DigitsDataModule(
        batch_size=64, pipeline=pipeline, train_transforms=TRAIN, eval_transforms=EVAL, seed=3
    )
    dm.setup("fit")
    return dm


def test_batched_loader_hands_out_raw_batches_with_the_same_samples_and_seeds():
    batched, per_image = digits("batched"), digits("torchvision")
    images, labels, seeds = next(iter(batched.train_dataloader()))
    assert images.dtype == torch.uint8 and images.shape == (64, 1, 32, 32) and seeds.dtype == torch.int64
    _, reference_labels = next(iter(per_image.train_dataloader()))
    assert torch.equal(labels, reference_labels)  # same order: the sampler is shared
    assert len(set(seeds.tolist())) == 64


def test_batches_are_augmented_after_transfer_and_eval_batches_only_normalized():
    dm = digits("batched")
    images, labels, seeds = next(iter(dm.val_dataloader()))
    out, out_labels = dm.on_after_batch_transfer((images, labels, seeds), 0)
    torch.testing.assert_close(out, images.float() / 255 * 2 - 1)
    assert out_labels is labels
    reference = digits("torchvision").splits.val[0][0]
    torch.testing.assert_close(dm.example_input()[0], reference)


def test_batched_needs_an_in_memory_dataset_and_batchable_ops(tmp_path):
    with pytest.raises(ConfigError, match=r"DigitStringsDataModule is not; use data\.pipeline=torchvision"):
        DigitStringsDataModule(batch_size=8, pipeline="batched")
    with pytest.raises(ConfigError, match="RandomResizedCrop has no batched version"):
        DigitsDataModule(batch_size=8, pipeline="batched", train_transforms=[v2.RandomResizedCrop(32)])
    with pytest.raises(ConfigError, match=r"data\.pipeline='fast' is unknown"):
        DigitsDataModule(batch_size=8, pipeline="fast")


def folder(root, **kwargs) -> ImageFolderDataModule:
    options = {
        "train_transforms": RESIZED,
        "eval_transforms": [v2.Resize([24, 40]), ToTensor()],
        "pipeline": "batched",
        **kwargs,
    }
    dm = ImageFolderDataModule(
        root=str(root), in_channels=3, image_size=32, batch_size=4, num_classes=None, **options
    )
    dm.setup("fit")
    return dm


def test_image_folder_decodes_once_into_a_tensor_and_caches_it_on_disk(tmp_path, monkeypatch):
    root = write_image_folder(tmp_path / "notes", ["1", "100"], per_class=10)
    dm = folder(root, cache_dir=str(tmp_path / "cache"))
    assert dm.splits.train.images.shape == (16, 3, 24, 40) and dm.splits.train.images.dtype == torch.uint8
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1
    monkeypatch.setattr(trainlab.data.cache, "decode_all", lambda *a: pytest.fail("decoded again"))
    again = folder(root, cache_dir=str(tmp_path / "cache"))
    assert torch.equal(again.splits.val.images, dm.splits.val.images)
    touched = root / "1" / "1_000.jpg"
    os.utime(touched, ns=(1, 1))  # a changed file is a new cache key: decode again
    with pytest.raises(pytest.fail.Exception, match="decoded again"):
        folder(root, cache_dir=str(tmp_path / "cache"))


def test_image_folder_batched_matches_the_per_image_eval_path(tmp_path):
    root = write_image_folder(tmp_path / "notes", ["1", "100"], per_class=10)
    batched = folder(root)
    per_image = folder(root, pipeline="torchvision")
    for i in range(len(per_image.splits.val)):
        image, label, _ = batched.splits.val[i]
        expected, expected_label = per_image.splits.val[i]
        out = batched.batch_transforms["eval"](image.unsqueeze(0), torch.zeros(1, dtype=torch.int64))
        torch.testing.assert_close(out[0], expected, atol=1 / 255, rtol=0)
        assert int(label) == int(expected_label)


def test_image_folder_batched_needs_the_same_leading_resize_for_train_and_eval(tmp_path):
    root = write_image_folder(tmp_path / "notes", ["a", "b"], per_class=5)
    with pytest.raises(ConfigError, match="must begin with the same Resize"):
        folder(root, eval_transforms=[v2.Resize([16, 16]), ToTensor()])
    with pytest.raises(Exception, match="Start the transform lists with a Resize"):
        folder(root, train_transforms=[ToTensor()], eval_transforms=[ToTensor()])


def test_cifar10_jpeg_holds_out_a_tenth_for_validation_and_decodes_once(tmp_path):
    root = write_cifar10_folder(tmp_path / "cifar10-train", per_class=20)
    cfg = compose_train(tmp_path, "data=cifar10_jpeg", f"data.root={root}")
    dm = build("data", cfg.data)
    dm.setup("fit")
    assert dm.classes == list(CIFAR_CLASSES) and dm.has_test_split is False
    assert len(dm.splits.train) == 180 and len(dm.splits.val) == 20
    assert torch.bincount(dm.splits.val.labels).tolist() == [2] * 10  # stratified
    assert dm.splits.train.images.shape == (180, 3, 32, 32) and dm.splits.train.images.dtype == torch.uint8
    images, _, _ = next(iter(dm.train_dataloader()))
    out, _ = dm.on_after_batch_transfer((images, torch.zeros(len(images)), torch.arange(len(images))), 0)
    assert out.dtype == torch.float32 and out.shape == (len(images), 3, 32, 32)


@pytest.mark.parametrize(("precision", "dtype"), [("64-true", torch.float64), ("bf16-mixed", torch.float32)])
def test_batched_images_take_the_trainers_precision(precision, dtype):
    """Lightning casts float inputs to a `-true` precision before this hook; these were uint8 then."""
    dm = digits("batched")
    dm.trainer = L.Trainer(precision=precision, accelerator="cpu", logger=False)
    batch = next(iter(dm.val_dataloader()))
    images, _ = dm.on_after_batch_transfer(batch, 0)
    assert images.dtype == dtype


def test_a_normalize_with_other_channels_than_the_images_is_refused_before_loading():
    three = [ToTensor(), v2.Normalize(mean=[0.5, 0.5, 0.5], std=[0.2, 0.2, 0.2])]
    with pytest.raises(
        ConfigError,
        match=r"data.eval_transforms\[1\] is a Normalize with 3 mean and std values, but "
        r"data.in_channels=1 makes 1-channel images.*or set data.in_channels=3",
    ):
        DigitsDataModule(batch_size=8, in_channels=1, train_transforms=TRAIN, eval_transforms=three)
    DigitsDataModule(batch_size=8, in_channels=3, train_transforms=TRAIN, eval_transforms=three)  # fits
    DigitsDataModule(batch_size=8, in_channels=3, train_transforms=TRAIN, eval_transforms=EVAL)  # broadcast


@pytest.mark.parametrize("pipeline", ["batched", "torchvision"])
def test_example_batch_matches_the_loaders_first_eval_batch(pipeline):
    dm = digits(pipeline)
    images, labels = dm.example_batch("val", size=5)
    loaded = next(iter(dm.model_ready(dm.val_dataloader())))
    assert torch.allclose(images, loaded[0][:5]) and torch.equal(labels, loaded[1][:5])


def test_labels_only_validation_has_are_refused():
    from trainlab.data.base import Splits, check_labels_seen_in_training
    from trainlab.errors import DataError

    seen = TensorImageDataset(torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 1, 0, 1]), None)
    unseen = TensorImageDataset(torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.tensor([1, 2]), None)
    check_labels_seen_in_training(Splits(seen, seen, None, ["a", "b", "c"]))
    with pytest.raises(
        DataError, match=r"The val split has images of class\(es\) \['c'\] that the train split"
    ):
        check_labels_seen_in_training(Splits(seen, unseen, None, ["a", "b", "c"]))


def test_an_unreadable_image_stops_decoding_with_the_skip_advice(tmp_path):
    write_image_folder(tmp_path, ["a"], per_class=2)
    bad = tmp_path / "a" / "a_001.jpg"
    bad.write_bytes(b"")
    with pytest.raises(
        DataError, match=rf"^Cannot read image {re.escape(str(bad))}: .*set data\.skip_bad_images=true"
    ):
        trainlab.data.cache.decode_all(sorted((tmp_path / "a").iterdir()), "RGB", [])
