"""Seeded, stratified splits: the same seed and labels always give the same train/val/test indices."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from trainlab.errors import ConfigError


def check_fractions(fractions: Sequence[float], key: str = "data.split") -> tuple[float, ...]:
    """Validate split fractions (e.g. [0.8, 0.1, 0.1]): positive numbers that add up to 1."""
    values = tuple(float(f) for f in fractions)
    if len(values) != 3 or any(f < 0 for f in values) or values[0] <= 0 or abs(sum(values) - 1) > 1e-6:
        raise ConfigError(
            f"{key}={list(fractions)} is not a valid split: give three non-negative fractions "
            "[train, val, test] that add up to 1, with train > 0, e.g. [0.8, 0.1, 0.1]."
        )
    return values


def stratified_split(
    labels: Sequence[int], fractions: Sequence[float], seed: int
) -> tuple[list[int], list[int], list[int]]:
    """Split indices class by class so each part keeps the class balance of the whole.

    Each class's share of val and test is rounded, and every class with at least three samples puts at
    least one sample in each non-empty part, so small datasets (20 RMB notes) still validate on both
    classes.
    """
    _, val_f, test_f = check_fractions(fractions)
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    parts: tuple[list[int], list[int], list[int]] = ([], [], [])
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        n = len(idx)
        n_val = min(_share(n, val_f), n - 1)
        n_test = max(0, min(_share(n, test_f), n - 1 - n_val))  # a class keeps >= 1 training sample
        parts[1].extend(idx[:n_val].tolist())
        parts[2].extend(idx[n_val : n_val + n_test].tolist())
        parts[0].extend(idx[n_val + n_test :].tolist())
    return tuple(sorted(p) for p in parts)  # type: ignore[return-value]


def _share(n: int, fraction: float) -> int:
    if fraction <= 0:
        return 0
    return max(1, round(n * fraction)) if n >= 3 else 0
