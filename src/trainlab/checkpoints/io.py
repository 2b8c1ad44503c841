"""Lightning checkpoint I/O that never leaves a truncated file at a checkpoint's final path."""

from __future__ import annotations

import errno
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from trainlab.atomic import atomic_write
from trainlab.errors import TrainlabError


class CheckpointWriteError(TrainlabError):
    """A checkpoint could not be written (full disk, no permission, path is not a directory)."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save into a temporary sibling, fsync, then rename over the target.

    Lightning's default writes straight into the target, so a kill or a full disk mid-save leaves a
    truncated last.ckpt that only fails later, at resume. A failed write is an error that names the
    file: the run must not go on believing it can be resumed.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options, got {storage_options!r}")
        target = Path(path)
        writer = None

        def write(handle: IO[bytes]) -> None:
            nonlocal writer
            writer = _RecordingWriter(handle)
            torch.save(checkpoint, writer)

        try:
            atomic_write(target, write)
        except (OSError, RuntimeError) as err:
            cause = writer.error if writer is not None and writer.error is not None else err
            raise CheckpointWriteError(save_failure(target, cause)) from err


class _RecordingWriter:
    """torch.save turns a failed write into an opaque RuntimeError; this keeps the OSError behind it."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self.handle.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        self.handle.flush()


def save_failure(target: Path, err: BaseException) -> str:
    cause = err.strerror if isinstance(err, OSError) and err.strerror else str(err).splitlines()[0]
    code = getattr(err, "errno", None)
    hint = {
        errno.ENOSPC: "the disk is full: free space",
        errno.EDQUOT: "the disk quota is used up: free space",
        errno.EFBIG: "the file is larger than this process may write (ulimit -f): raise the limit",
        errno.EACCES: f"no permission to write in {target.parent}: fix its permissions",
        errno.EPERM: f"no permission to write in {target.parent}: fix its permissions",
        errno.EROFS: f"{target.parent} is on a read-only file system: set paths.output_dir elsewhere",
    }.get(code, f"check that {target.parent} is a writable directory with free space")
    if target.exists():
        state, then = "the previous checkpoint there is unchanged", "then resume with ckpt_path=last"
    else:
        state, then = "no checkpoint was left there", "then run again"
    return f"Could not write checkpoint {target}: {cause}. {state.capitalize()}. Likely {hint}; {then}."


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise TrainlabError(f"Checkpoint {path} does not exist.")
    if path.stat().st_size == 0:
        raise TrainlabError(f"Checkpoint {path} is empty (0 bytes): it was never fully written.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any file can be named here: text, another zip, a pickle of anything
        cause = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TrainlabError(
            f"Checkpoint {path} cannot be read ({cause}); it is truncated or not a checkpoint."
        ) from err
    if not isinstance(checkpoint, Mapping) or "state_dict" not in checkpoint:
        raise TrainlabError(f"{path} is not a Lightning checkpoint (no state_dict).")
    return dict(checkpoint)
