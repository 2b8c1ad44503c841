"""SIGTERM and SIGINT for the whole life of a command, before anything heavy is imported.

Outside fitting (start-up, testing, writing the run's files) a signal stops the command at once, as
KeyboardInterrupt: every file trainlab writes is written atomically, so none is left half written. The
signal is noted, so the exit code is 128 + its number (143 SIGTERM, 130 SIGINT), as schedulers and
shells expect. While fitting, trainlab.callbacks.interrupt.CheckpointOnSignal's graceful stop (finish the
step, save, then stop) takes over and puts this back afterwards. Imports nothing but the standard library:
importing Lightning before Hydra has set up logging would give Lightning a console handler of its own.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_received: list[int] = []  # every SIGTERM / SIGINT this process got, in order


def stop_on_signals() -> None:
    """Install the stop-at-once handlers (main thread only; a signal ignored by the shell stays ignored,
    as for `cmd &`)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in HANDLED_SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _stop_now)


def _stop_now(signum: int, frame: FrameType | None) -> None:
    note(signum)
    raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")


def note(signum: int) -> None:
    """Record a received signal (handlers that stop otherwise call this too)."""
    _received.append(signum)


def last_signal() -> int | None:
    """The last SIGTERM or SIGINT this process received, if any."""
    return _received[-1] if _received else None
