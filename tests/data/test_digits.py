import torch

from trainlab.data.digits import DigitsDataModule, load_digit_images


def test_images_are_upscaled_uint8_with_real_labels():
    images, labels = load_digit_images(image_size=32, in_channels=3)
    assert images.shape == (1797, 3, 32, 32) and images.dtype == torch.uint8
    assert torch.equal(images[:, 0], images[:, 2])  # grey repeated into RGB
    assert images.max() > 200 and images.min() == 0
    assert sorted(labels.unique().tolist()) == list(range(10))


def test_datamodule_splits_and_batches():
    dm = DigitsDataModule(batch_size=32, image_size=32, in_channels=1)
    dm.setup("fit")
    sizes = [len(dm.splits.train), len(dm.splits.val), len(dm.splits.test)]
    assert sum(sizes) == 1797 and 170 <= sizes[1] <= 190 and 170 <= sizes[2] <= 190
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (32, 1, 32, 32) and images.dtype == torch.float32
    assert labels.dtype == torch.int64
    assert dm.num_classes == 10 and dm.classes[3] == "3"
