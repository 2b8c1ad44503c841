import pickle
import urllib.error

import pytest
import torch

from trainlab.data import cifar10
from trainlab.data.cifar10 import CIFAR10DataModule, read_batch
from trainlab.errors import ConfigError, DataError


def make(root, **kwargs):
    kwargs = {"val_size": 20, "batch_size": 16, **kwargs}
    return CIFAR10DataModule(root=str(root), **kwargs)


def test_reads_the_official_python_format(cifar10_root):
    images, labels = read_batch(cifar10_root / "cifar-10-batches-py" / "data_batch_1")
    assert images.shape == (40, 3, 32, 32) and images.dtype == torch.uint8
    raw = pickle.load((cifar10_root / "cifar-10-batches-py" / "data_batch_1").open("rb"), encoding="latin1")
    # row-major 3072 = 1024 red, then green, then blue values
    assert torch.equal(images[5, 1].flatten(), torch.as_tensor(raw["data"][5][1024:2048]))
    assert labels.tolist() == raw["labels"]


def test_split_45k_5k_style_and_test_batch(cifar10_root):
    dm = make(cifar10_root)
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.splits.train) == 180 and len(dm.splits.val) == 20 and len(dm.splits.test) == 100
    assert dm.classes[0] == "airplane" and dm.num_classes == 10
    image, _ = dm.splits.val[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32


def test_missing_directory_says_where_and_what_to_do(tmp_path):
    with pytest.raises(DataError) as err:
        make(tmp_path).prepare_data()
    message = str(err.value)
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert "data_batch_1" in message and "data.download=true" in message and "data=digits" in message


def test_partial_directory_lists_missing_files(cifar10_root, tmp_path):
    batch_dir = tmp_path / "cifar-10-batches-py"
    batch_dir.mkdir()
    (batch_dir / "data_batch_1").write_bytes(
        (cifar10_root / "cifar-10-batches-py" / "data_batch_1").read_bytes()
    )
    with pytest.raises(DataError, match=r"lacks data_batch_2"):
        make(tmp_path).prepare_data()


def test_offline_download_fails_clearly(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(cifar10, "download_and_extract_archive", offline)
    with pytest.raises(DataError, match=r"Downloading CIFAR-10.*network is unreachable.*data=digits"):
        make(tmp_path, download=True).prepare_data()


def test_download_checks_the_archive_md5(tmp_path, monkeypatch):
    seen = {}

    def fake_download(url, root, filename, md5):
        seen.update(url=url, md5=md5)

    monkeypatch.setattr(cifar10, "download_and_extract_archive", fake_download)
    with pytest.raises(DataError):  # the fake fetched nothing, so the files are still missing
        make(tmp_path, download=True).prepare_data()
    assert seen == {"url": cifar10.ARCHIVE_URL, "md5": "c58f30108f718f92721af3b95e74349a"}


def test_corrupt_batch_names_the_file(cifar10_root, tmp_path):
    batch_dir = tmp_path / "cifar-10-batches-py"
    batch_dir.mkdir()
    for f in (cifar10_root / "cifar-10-batches-py").iterdir():
        (batch_dir / f.name).write_bytes(f.read_bytes())
    (batch_dir / "data_batch_3").write_bytes(b"\x80\x02garbage")
    with pytest.raises(DataError, match=r"data_batch_3"):
        make(tmp_path).setup("fit")


def test_wrong_image_size_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.image_size=64"):
        make(tmp_path, image_size=64)


def test_val_size_too_large(cifar10_root):
    with pytest.raises(ConfigError, match=r"data\.val_size=5000"):
        make(cifar10_root, val_size=5000).setup("fit")
