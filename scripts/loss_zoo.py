"""Train every loss in conf/loss/ on digits and write the results table into README.md.

    python scripts/loss_zoo.py                  # all losses, 10 epochs each (about 5 minutes on 2 cores)
    python scripts/loss_zoo.py --losses ce nll  # a subset, printed only
    python scripts/loss_zoo.py --check          # exit 1 if any loss stays below --target val/acc

Each loss runs through the real CLI (`python -m trainlab data=digits loss=<name> trainer.max_epochs=10`,
the loss's shipped defaults and the default optimizer) in a subprocess; the table lists val/acc (last
epoch), val/acc_best, test/acc, epochs and wall-clock seconds of the whole command.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trainlab

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
START, END = "<!-- loss-zoo:start -->", "<!-- loss-zoo:end -->"


def all_losses() -> list[str]:
    return sorted(p.stem for p in (Path(trainlab.__file__).parent / "conf" / "loss").glob("*.yaml"))


def run(loss: str, epochs: int, workdir: Path) -> dict:
    run_dir = workdir / loss
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainlab",
            "data=digits",
            f"loss={loss}",
            f"trainer.max_epochs={epochs}",
            f"hydra.run.dir={run_dir}",
            "trainer.enable_progress_bar=false",
            "logger=none",
        ],
        capture_output=True,
        text=True,
        cwd=workdir,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        return {
            "loss": loss,
            "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed",
        }
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {"loss": loss, "seconds": seconds, **metrics}


def table(rows: list[dict], epochs: int) -> str:
    command = f"python -m trainlab data=digits loss=<name> trainer.max_epochs={epochs}"
    lines = [
        f"`{command}` (shipped loss defaults, default optimizer), measured by `scripts/loss_zoo.py` "
        f"on {platform.machine()}, {_cores()} CPU cores:",
        "",
        "| loss | val/acc | val/acc_best | test/acc | epochs | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| `{row['loss']}` | failed: {row['error']} | | | | |")
        else:
            scores = " | ".join(f"{row[key]:.4f}" for key in ("val/acc", "val/acc_best", "test/acc"))
            lines.append(f"| `{row['loss']}` | {scores} | {row['epochs']} | {row['seconds']:.1f} |")
    return "\n".join(lines)


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def write_readme(text: str) -> None:
    readme = README.read_text()
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{text}\n{END}{tail}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--losses", nargs="*", default=None)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--target", type=float, default=0.90)
    parser.add_argument("--check", action="store_true", help="exit 1 if a loss misses --target")
    args = parser.parse_args()
    losses = args.losses or all_losses()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for loss in losses:
            rows.append(run(loss, args.epochs, Path(tmp)))
            print(
                json.dumps({k: rows[-1].get(k) for k in ("loss", "val/acc", "seconds", "error")}), flush=True
            )
    text = table(rows, args.epochs)
    print(text)
    if args.losses is None:
        write_readme(text)
    missed = [r["loss"] for r in rows if "error" in r or r["val/acc"] < args.target]
    if missed:
        print(f"below val/acc {args.target}: {', '.join(missed)}", file=sys.stderr)
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
