import shutil
from collections import Counter

import pytest
import torch

from realformat import write_image_folder
from trainlab.data.datasets import read_image
from trainlab.data.imagefolder import ImageFolderDataModule
from trainlab.errors import ConfigError, DataError

RMB = {"layouts": ["rmb_split", "RMB_data"], "classes": ["1", "100"]}


def make(root, **kwargs):
    kwargs = {"in_channels": 3, "image_size": 32, "batch_size": 4, "num_classes": None, **kwargs}
    dm = ImageFolderDataModule(root=str(root), **kwargs)
    dm.setup("fit")
    return dm


def labels_of(dataset):
    return Counter(dataset.labels)


def test_rmb_flat_folder_is_split_80_10_10_stratified(rmb_root):
    dm = make(rmb_root, **RMB)
    assert dm.classes == ["1", "100"]  # label map {"1": 0, "100": 1}
    assert labels_of(dm.splits.train) == {0: 16, 1: 16}
    assert labels_of(dm.splits.val) == {0: 2, 1: 2}
    assert labels_of(dm.splits.test) == {0: 2, 1: 2}
    for path, label in zip(dm.splits.train.paths, dm.splits.train.labels, strict=True):
        assert path.parent.name == dm.classes[label]
    image, label = dm.splits.val[0]
    assert image.shape == (3, 32, 32)


def test_presplit_layout_wins_and_valid_is_accepted(tmp_path):
    root = tmp_path / "rmb"
    write_image_folder(root / "RMB_data", ["1", "100"], per_class=3)
    for part, n in (("train", 6), ("valid", 2), ("test", 3)):
        write_image_folder(root / "rmb_split" / part, ["1", "100"], per_class=n, seed=n)
    dm = make(root, **RMB)
    assert (len(dm.splits.train), len(dm.splits.val), len(dm.splits.test)) == (12, 4, 6)
    assert all("rmb_split" in str(p) for p in dm.splits.train.paths)


def test_presplit_without_val_carves_it_from_train_and_without_test_skips_test(tmp_path):
    write_image_folder(tmp_path / "train", ["a", "b", "c"], per_class=10)
    dm = make(tmp_path)
    assert dm.classes == ["a", "b", "c"] and dm.num_classes == 3
    assert len(dm.splits.val) == 3 and len(dm.splits.train) == 27
    assert dm.splits.test is None and not dm.has_test_split


def test_grey_images_for_one_channel(rmb_root):
    dm = make(rmb_root, in_channels=1, **RMB)
    image, _ = dm.splits.train[0]
    assert image.shape == (1, 32, 32)


def test_missing_root_names_it(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "nowhere")):
        make(tmp_path / "nowhere", **RMB)


def test_root_without_expected_layout_names_both(tmp_path):
    with pytest.raises(DataError, match=r"rmb_split.*RMB_data"):
        make(tmp_path, **RMB)


def test_missing_class_folder(tmp_path):
    write_image_folder(tmp_path / "RMB_data", ["1"], per_class=4)
    with pytest.raises(DataError, match=r"lacks the class folders \['100'\]"):
        make(tmp_path, **RMB)


def test_empty_class_folder_names_it(rmb_root, tmp_path):
    shutil.copytree(rmb_root, tmp_path / "rmb")
    empty = tmp_path / "rmb" / "RMB_data" / "100"
    shutil.rmtree(empty)
    empty.mkdir()
    with pytest.raises(DataError, match=f"{empty} holds no images"):
        make(tmp_path / "rmb", **RMB)


def test_no_class_folders(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"")
    with pytest.raises(DataError, match=r"no class subfolders"):
        make(tmp_path)


def test_num_classes_mismatch_says_what_to_set(rmb_root):
    with pytest.raises(ConfigError, match=r"data\.num_classes=3.*Set data\.num_classes=2"):
        make(rmb_root, num_classes=3, **RMB)


def test_unreadable_image_names_the_file(tmp_path):
    write_image_folder(tmp_path, ["a", "b"], per_class=5)
    bad = tmp_path / "a" / "a_000.jpg"
    bad.write_bytes(b"not a jpeg")
    dm = make(tmp_path, split=[0.8, 0.2, 0.0])
    datasets = [dm.splits.train, dm.splits.val]
    with pytest.raises(DataError, match=r"a_000\.jpg"):
        for ds in datasets:
            for i, path in enumerate(ds.paths):
                if path == bad:
                    ds[i]


def test_read_image_names_the_file_its_context_and_the_callers_advice(tmp_path):
    write_image_folder(tmp_path, ["a"], per_class=1)
    assert read_image(tmp_path / "a" / "a_000.jpg", "L").mode == "L"
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DataError) as raised:
        read_image(bad, "RGB", context="sample 7", advice="Remove it.")
    assert str(raised.value) == f"Cannot read image {bad} (sample 7): {raised.value.__cause__}. Remove it."
    assert isinstance(raised.value.__cause__, OSError)
    with pytest.raises(DataError, match=r"^Cannot read image .*nowhere\.jpg: \[Errno 2\] .*'\.$"):
        read_image(tmp_path / "nowhere.jpg", "RGB")


def test_shared_rmb_is_read_when_present(shared_rmb):
    dm = make(shared_rmb, **RMB)
    assert labels_of(dm.splits.train) == {0: 80, 1: 80}
    assert len(dm.splits.val) == 20 and len(dm.splits.test) == 20


def test_one_class_is_refused(tmp_path):
    write_image_folder(tmp_path, ["only"], per_class=6)
    with pytest.raises(DataError, match=r"found 1 class \(only\): a classifier needs at least 2"):
        make(tmp_path)


def test_file_check_names_files_that_cannot_be_images(tmp_path):
    for split in ("train", "val", "test"):
        write_image_folder(tmp_path / split, ["a", "b"], per_class=3)
    (tmp_path / "test" / "b" / "notes.jpg").write_text("not an image")
    (tmp_path / "val" / "a" / "empty.png").write_bytes(b"")
    dm = make(tmp_path)
    with pytest.raises(DataError) as raised:
        dm.check_files()
    text = str(raised.value)
    assert text.startswith("2 image file(s) cannot be read")
    assert f"{tmp_path / 'val' / 'a' / 'empty.png'} (the file is empty)" in text
    assert f"{tmp_path / 'test' / 'b' / 'notes.jpg'} (not an image" in text
    (tmp_path / "test" / "b" / "notes.jpg").unlink()
    (tmp_path / "val" / "a" / "empty.png").unlink()
    make(tmp_path).check_files()  # every other file passes


def test_example_batch_is_the_first_samples_as_the_model_gets_them(rmb_root):
    dm = make(rmb_root, **RMB, pipeline="torchvision")
    images, labels = dm.example_batch("val", size=3)
    assert images.shape == (3, 3, 32, 32) and images.dtype == torch.float32
    assert labels.tolist() == list(dm.splits.val.labels[:3])
    state = torch.get_rng_state()
    first, _ = dm.example_batch("train", size=3)
    again, _ = dm.example_batch("train", size=3)
    assert torch.equal(first, again) and torch.equal(torch.get_rng_state(), state)  # seeded per sample


def test_a_skipped_file_with_a_name_that_is_not_utf8_reaches_the_log(tmp_path, caplog):
    import logging
    import os

    write_image_folder(tmp_path, ["a", "b"], per_class=6)
    broken = tmp_path.joinpath("a").joinpath(os.fsdecode(b"caf\xe9.jpg"))
    broken.write_bytes(b"not an image")
    caplog.set_level(logging.WARNING)
    dm = make(tmp_path, skip_bad_images=True)
    assert broken in dm.skipped_images
    (line,) = [r.getMessage() for r in caplog.records if "skip_bad_images" in r.getMessage()]
    assert "caf\\xe9.jpg" in line
    line.encode("utf-8")  # a UTF-8 log file takes it (the surrogate escape of the raw name would not)
