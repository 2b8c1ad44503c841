import subprocess
import sys

from trainlab.data.imagefolder import ImageFolderDataModule


def test_split_command_writes_the_same_split_the_datamodule_makes(rmb_root, tmp_path):
    dst = tmp_path / "rmb_split"
    done = subprocess.run(
        [sys.executable, "-m", "trainlab.data.split", str(rmb_root / "RMB_data"), str(dst)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "train 32, valid 4, test 4" in done.stdout
    written = {
        part: sorted(p.name for p in (dst / part).rglob("*.jpg")) for part in ("train", "valid", "test")
    }
    assert sorted((dst / "train").iterdir()) == [dst / "train" / "1", dst / "train" / "100"]

    on_the_fly = ImageFolderDataModule(
        root=str(rmb_root),
        layouts=["RMB_data"],
        classes=["1", "100"],
        num_classes=2,
        in_channels=3,
        image_size=32,
        batch_size=4,
    )
    on_the_fly.setup()
    assert written["valid"] == sorted(p.name for p in on_the_fly.splits.val.paths)
    assert written["test"] == sorted(p.name for p in on_the_fly.splits.test.paths)


def test_split_refuses_to_overwrite_and_leaves_nothing_behind(rmb_root, tmp_path):
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "keep.txt").write_text("mine")
    done = subprocess.run(
        [sys.executable, "-m", "trainlab.data.split", str(rmb_root / "RMB_data"), str(dst)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1 and str(dst) in done.stderr and "not empty" in done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert [p.name for p in dst.iterdir()] == ["keep.txt"]
