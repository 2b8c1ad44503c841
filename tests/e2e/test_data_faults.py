"""Broken data in real CLI runs: errors name the file and sample, skip_bad_images counts what it skips."""

from __future__ import annotations

import json

import pytest

from faults import fault_env
from realformat import write_image_folder

pytestmark = pytest.mark.slow

FOLDER_RUN = ["data=imagefolder", "data.image_size=32", "model=lenet", "test=false", "trainer.max_epochs=1"]


@pytest.fixture
def folder_with_bad_images(tmp_path):
    root = write_image_folder(tmp_path / "images", ["a", "b"], per_class=20)
    good = (root / "a" / "a_003.jpg").read_bytes()
    (root / "a" / "a_003.jpg").write_bytes(good[: len(good) // 2])  # truncated JPEG
    (root / "b" / "b_007.jpg").write_bytes(b"")  # 0-byte file
    return root


def test_a_truncated_jpeg_read_in_a_worker_is_named_with_its_sample(cli, tmp_path):
    """Its first bytes are a JPEG's, so the start-up file check passes it (an empty file is found there,
    tests/e2e/test_preflight.py); decoding it in a loader worker fails, after the rehearsal's first
    batches (it is the 12th training image)."""
    for split in ("train", "val"):
        write_image_folder(tmp_path / "images" / split, ["a", "b"], per_class=12)
    bad = tmp_path / "images" / "train" / "a" / "a_011.jpg"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    result = cli(*FOLDER_RUN, f"data.root={tmp_path / 'images'}", "data.num_workers=1")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: Cannot read image ") and "a_011.jpg" in result.stderr
    assert "(sample " in result.stderr and "raised in DataLoader worker process 0" in result.stderr
    assert "data.skip_bad_images=true" in result.stderr


def test_skip_bad_images_leaves_them_out_and_counts_them(cli, folder_with_bad_images):
    result = cli(*FOLDER_RUN, f"data.root={folder_with_bad_images}", "data.skip_bad_images=true").check()
    assert result.metrics["data/skipped_images"] == 2
    log = (result.run_dir / "train.log").read_text()
    assert "left out 2 unreadable image(s)" in log and "a_003.jpg" in log and "b_007.jpg" in log


def test_a_worker_killed_outright_is_reported_without_a_hang(cli):
    result = cli(
        "data._target_=faults.DigitsWithCrashingWorker",
        "+data.crash_at=5",
        "data.num_workers=1",
        "trainer.max_epochs=1",
        "test=false",
        env=fault_env(),
        timeout=180,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "DataLoader worker" in result.stderr and "data.num_workers=0" in result.stderr
    status = json.loads((result.run_dir / "status.json").read_text())
    assert status["status"] == "failed"
