"""One writer per run dir: an exclusive lock for the life of a run (or a resume into it).

The same command started twice with a fixed `hydra.run.dir` would otherwise have two processes writing
one train.log, one TensorBoard dir, one checkpoints/ (one deleting the other's temporary files) and one
status.json. The lock is `flock` on `<run dir>/.trainlab.lock`: the kernel releases it when its process
ends, however it ends, so a killed run leaves no stale lock; on NFS, Linux maps it to a POSIX lock the
server's lock manager holds for every host. The file says who holds it (pid, host, start), for the error.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from trainlab.errors import TrainlabError

LOCK_FILE = ".trainlab.lock"


class RunDirInUse(TrainlabError):
    """Another process holds the run dir."""


@contextlib.contextmanager
def run_dir_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run dir for the `with` block; RunDirInUse names the holder when another process has it."""
    path = Path(run_dir) / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise RunDirInUse(
                f"run dir {run_dir} is in use by {holder(path)}: two runs writing one run dir would mix "
                "their logs, checkpoints and metrics. Wait for it to end (or stop it), or give this run "
                "another dir (hydra.run.dir=...)."
            ) from None
        os.ftruncate(fd, 0)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "since": _now()}
        os.write(fd, json.dumps(record).encode())
        yield
    finally:
        os.close(fd)  # closing releases the lock


def holder(path: Path) -> str:
    """'pid N on host H (since T)' from the lock file, as far as it says."""
    try:
        record = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        record = {}
    if not isinstance(record, dict) or "pid" not in record:
        return "another process"
    return f"pid {record['pid']} on host {record.get('host', '?')} (since {record.get('since', '?')})"


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")
