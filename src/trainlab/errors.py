"""User-facing errors: raised for bad input and printed as one paragraph, without a traceback."""

from __future__ import annotations

import difflib
import inspect
import sys
from collections.abc import Callable, Iterable, Sequence


class TrainlabError(Exception):
    """A problem the user can fix (a missing dataset, a bad value); the message says what to do."""


class DataError(TrainlabError):
    """The dataset on disk is missing, incomplete or not in the expected format."""


class ConfigError(TrainlabError):
    """A config value is inconsistent with the data, the model or another value."""


def user_message(err: BaseException) -> str:
    """The error's own words. An error raised in a DataLoader worker reaches the main process as
    'Caught DataError in DataLoader worker process 0. Original Traceback ...: DataError: <message>';
    the user needs the message and where it happened, not the worker's traceback."""
    text = str(err)
    marker = "Original Traceback (most recent call last):"
    if marker not in text:
        return text
    head, _, trace = text.partition(marker)
    last = [line for line in trace.strip().splitlines() if line.strip()][-1]
    message = last.split(": ", 1)[1] if ": " in last else last
    where = head.strip().removeprefix("Caught ").split(" in ", 1)[-1].rstrip(".")
    return f"{message} (raised in {where})"


def asked_for_help(argv: Sequence[str], doc: str | None) -> bool:
    """For the key=value tools: print `doc` (the tool's module docstring) on -h/--help, and say so."""
    if not {"-h", "--help"} & set(argv):
        return False
    print(inspect.cleandoc(doc or ""))
    return True


def exit_code(command: Callable[[], object]) -> int:
    """Run a command-line tool's work: 0 on success; a user error prints one `error:` line and gives 1."""
    try:
        command()
    except TrainlabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def nearest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate a misspelled or differently spelled `name` most likely meant, or None: one whose
    words' initials it is or that are its initials (learning_rate -> lr, wd -> weight_decay), else the
    closest spelling (difflib's ratio >= 0.6)."""
    candidates = sorted(candidates)
    for candidate in candidates:
        if len(candidate) > 1 and (initials(name) == candidate or initials(candidate) == name):
            return candidate
    found = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return found[0] if found else None


def initials(name: str) -> str:
    words = [word for word in name.split("_") if word]
    return "".join(word[0] for word in words) if len(words) > 1 else ""
