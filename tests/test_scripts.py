"""Scripts in scripts/ that the tests run in their quick form."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def test_resume_stops_quick_ends_every_resumed_run_with_the_uninterrupted_metrics(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "resume_stops.py"),
            "--quick",
            "--seed",
            "3",
            "--keep",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "6 of 6 resumed runs end with the uninterrupted run's metrics.json" in done.stdout
    assert done.stdout.count("| equal |") == 6 and "| kill -9 |" in done.stdout


def test_update_ratios_quick_compares_three_optimizers_per_layer(tmp_path):
    png = tmp_path / "ratios.png"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "update_ratios.py"), "--quick", "--png", str(png)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| `net.")]
    assert len(rows) == 10  # tudui's five layers, weight and bias each
    header = next(line for line in done.stdout.splitlines() if line.startswith("| parameter"))
    assert "`sgd`" in header and "`adam`" in header and "`rprop`" in header
    ratios = [float(cell) for row in rows for cell in row.strip("|").split("|")[1:]]
    assert len(ratios) == 30 and all(0 < r < 10 for r in ratios)
    assert png.stat().st_size > 10_000
