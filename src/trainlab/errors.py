"""User-facing errors: raised for bad input and printed as one paragraph, without a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable


class TrainlabError(Exception):
    """A problem the user can fix (a missing dataset, a bad value); the message says what to do."""


class DataError(TrainlabError):
    """The dataset on disk is missing, incomplete or not in the expected format."""


class ConfigError(TrainlabError):
    """A config value is inconsistent with the data, the model or another value."""


def exit_code(command: Callable[[], object]) -> int:
    """Run a command-line tool's work: 0 on success; a user error prints one `error:` line and gives 1."""
    try:
        command()
    except TrainlabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
