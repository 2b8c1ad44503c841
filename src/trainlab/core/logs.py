"""Console and log hygiene: Lightning's records go through Hydra's handlers, its noise does not."""

from __future__ import annotations

import logging
import sys
import warnings


def silence_known_warnings() -> None:
    """Lightning warnings that say nothing about the user's run."""
    # On a CPU box worker processes steal cores from the model, so num_workers=0 is a deliberate default.
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=r".*is smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")
    # Epoch metrics are torchmetrics values, already synced across devices when they are logged.
    warnings.filterwarnings("ignore", message=r".*when logging on epoch level in distributed setting.*")
    # trainlab says it itself, and records the precision that runs (preflight.config)
    warnings.filterwarnings("ignore", message=r".*AMP with fp16 is not supported on CPU.*")


def expect_existing_checkpoints() -> None:
    """A resume writes on in its run dir's checkpoints/, which Lightning warns holds files already."""
    warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty.*")


def route_lightning_logs_to_hydra() -> None:
    """Lightning adds its own console handler; Hydra's handlers already print and file its records."""
    if logging.getLogger().handlers:
        logging.getLogger("lightning").handlers.clear()
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropAdverts) for f in rank_zero.filters):
        rank_zero.addFilter(_DropAdverts())


class _DropAdverts(logging.Filter):
    """Lightning's start-up 'Tip: try installing ...' product advert says nothing about the run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


def quiet_lightning() -> None:
    """Only warnings and errors from Lightning: its device banner is noise for a one-shot command."""
    silence_known_warnings()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric").setLevel(logging.WARNING)


class BarSafeStreamHandler(logging.StreamHandler):
    """Hydra's console handler (conf/hydra/default.yaml), writing each record on a line of its own: an
    active progress bar is cleared first and redrawn after, so a record never starts mid-bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        with tqdm.external_write_mode(file=self.stream):
            super().emit(record)


def print_error(message: str) -> None:
    """`error: message` on stderr, on a line of its own even with a progress bar on screen."""
    from tqdm import tqdm

    with tqdm.external_write_mode(file=sys.stderr):
        print(f"error: {message}", file=sys.stderr)
