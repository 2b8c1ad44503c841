"""Write-then-rename, so a reader never sees a half-written file even if the writer is killed."""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"  # a temporary file being written: never read, removed on the next start


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside `path`; on clean exit fsync it and rename it over `path`.

    On any error the temporary file is removed and `path` keeps its previous content.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=PARTIAL_SUFFIX, dir=target.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would make checkpoints private to their writer
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
        _fsync_dir(target.parent)  # the rename itself survives a power loss only once its dir is synced
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_open(path, "w") as handle:
        handle.write(text)


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO], None]) -> None:
    with atomic_open(path, "wb") as handle:
        write(handle)


def atomic_write_csv(
    path: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]], fieldnames: Sequence[str] | None = None
) -> None:
    """A header row of `fieldnames` (default: the first row's keys, in order), then one line per row;
    "\n" line ends, None as an empty cell. The one CSV writer of trainlab's output files."""
    if fieldnames is None:
        if not rows:
            raise ValueError(f"{path}: no rows to take the CSV columns from; pass fieldnames")
        fieldnames = list(rows[0])
    with atomic_open(path, "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def remove_partial_writes(directory: Path, recursive: bool = False) -> list[Path]:
    """Delete what writers killed mid-write (kill -9, power loss) left behind in `directory` (and its
    subdirectories, with `recursive`). Only the run dir's holder may call it (trainlab.records.lock):
    another writer's file in progress looks the same."""
    pattern = f".*{PARTIAL_SUFFIX}"
    found = directory.rglob(pattern) if recursive else directory.glob(pattern)
    leftovers = sorted(found) if directory.is_dir() else []
    for path in leftovers:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    if leftovers:
        log.info("removed %d partial file(s) a killed run left in %s", len(leftovers), directory)
    return leftovers
