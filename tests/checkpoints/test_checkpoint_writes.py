"""Checkpoint writes under kill -9 and failing disks: the file at a checkpoint's path always loads."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from trainlab.atomic import PARTIAL_SUFFIX, remove_partial_writes
from trainlab.checkpoints.io import AtomicCheckpointIO, CheckpointWriteError

KILLER = textwrap.dedent(
    """
    import os, random, signal, sys, time
    import torch
    from trainlab.checkpoints.io import AtomicCheckpointIO

    target, kills = sys.argv[1], int(sys.argv[2])
    rng = random.Random(int(sys.argv[3]))
    torch.set_num_threads(1)  # no OpenMP pool in the parent: forked writers must not inherit one
    io = AtomicCheckpointIO()
    for k in range(kills):
        pid = os.fork()
        if pid == 0:  # the writer: rewrites the checkpoint (~8 MB) until it is killed
            step = 0
            while True:
                step += 1
                weights = torch.full((2_000_000,), float(step))
                io.save_checkpoint({"step": step, "state_dict": {"w": weights}}, target)
        time.sleep(rng.uniform(0.0, 0.08))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        checkpoint = torch.load(target, weights_only=True) if os.path.exists(target) else None
        if checkpoint is not None:
            expected = torch.full((2_000_000,), float(checkpoint["step"]))
            assert torch.equal(checkpoint["state_dict"]["w"], expected)
        folder = os.path.dirname(target)  # absent when the first kill lands before the writer made it
        files = len(os.listdir(folder)) if os.path.isdir(folder) else 0
        print(k, checkpoint and checkpoint["step"], files, flush=True)
    """
)


def test_kill_9_at_many_points_of_a_write_never_leaves_a_broken_checkpoint(tmp_path):
    target = tmp_path / "checkpoints" / "last.ckpt"
    seed = int.from_bytes(os.urandom(4), "little")
    done = subprocess.run(
        [sys.executable, "-c", KILLER, str(target), "40", str(seed)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"seed {seed}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    rows = [line.split() for line in done.stdout.splitlines()]
    assert len(rows) == 40
    loaded = [row for row in rows if row[1] != "None"]
    assert len(loaded) >= 30, f"most kills come after a first complete write: {rows}"
    leftovers = list(target.parent.glob(f".*{PARTIAL_SUFFIX}"))
    assert len(leftovers) >= 5, f"kills should land inside writes (seed {seed}): {rows}"
    assert [p.name for p in target.parent.iterdir() if not p.name.startswith(".")] == ["last.ckpt"]
    assert sorted(remove_partial_writes(target.parent)) == sorted(leftovers)
    assert [p.name for p in target.parent.iterdir()] == ["last.ckpt"]
    torch.load(target, weights_only=True)


def previous_checkpoint(tmp_path):
    target = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": 1}, target)
    return target


@pytest.mark.parametrize(
    ("code", "hint"),
    [(errno.ENOSPC, "the disk is full"), (errno.EACCES, "no permission"), (errno.EROFS, "read-only")],
)
def test_a_failed_write_names_the_file_keeps_the_previous_one_and_leaves_nothing(
    tmp_path, monkeypatch, code, hint
):
    target = previous_checkpoint(tmp_path)

    def failing_save(obj, handle):
        handle.write(b"half a checkpoint")
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(CheckpointWriteError) as caught:
        AtomicCheckpointIO().save_checkpoint({"step": 2}, target)
    message = str(caught.value)
    assert str(target) in message and hint in message and "previous checkpoint there is unchanged" in message
    monkeypatch.undo()
    assert torch.load(target, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_a_checkpoint_dir_that_cannot_be_created_is_named(tmp_path):
    blocker = tmp_path / "checkpoints"
    blocker.write_text("a file where the checkpoint dir should be")
    with pytest.raises(CheckpointWriteError, match=r"Could not write checkpoint .*checkpoints/last\.ckpt"):
        AtomicCheckpointIO().save_checkpoint({"step": 1}, blocker / "last.ckpt")


def test_file_size_limit_is_a_real_failed_write(tmp_path):
    """ulimit -f in a child process: the kernel refuses the write (EFBIG), as it would on a full disk."""
    script = textwrap.dedent(
        f"""
        import resource, signal, torch
        from trainlab.checkpoints.io import AtomicCheckpointIO, CheckpointWriteError
        io = AtomicCheckpointIO()
        io.save_checkpoint({{"w": torch.zeros(10)}}, {str(tmp_path / "last.ckpt")!r})
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
        try:
            io.save_checkpoint({{"w": torch.zeros(1_000_000)}}, {str(tmp_path / "last.ckpt")!r})
        except CheckpointWriteError as err:
            print(err)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "Could not write checkpoint" in done.stdout and "ulimit -f" in done.stdout, (
        done.stdout + done.stderr
    )
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["w"].numel() == 10
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
