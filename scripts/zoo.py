"""Train every option of a config group on digits and write the results table into README.md.

    python scripts/zoo.py loss                    # every loss, 10 epochs each (about 6 minutes on 2 cores)
    python scripts/zoo.py optim                   # every optimizer
    python scripts/zoo.py optim --only sgd adam   # a subset, printed only
    python scripts/zoo.py loss --check            # exit 1 if an option stays below --target val/acc

Each option runs through the real CLI (`python -m trainlab data=digits <group>=<name>
trainer.max_epochs=10`, its shipped defaults and the default recipe otherwise; EXTRA adds the overrides
an option needs) in a subprocess. The table lists val/acc (last epoch), val/acc_best, test/acc, epochs
and the wall-clock seconds of the whole command.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trainlab.core.build import shipped_options

README = Path(__file__).resolve().parents[1] / "README.md"
EXTRA = {("optim", "sparse_adam"): ["model=bag_of_pixels"]}  # SparseAdam takes sparse gradients only


def overrides(group: str, name: str, epochs: int) -> list[str]:
    return ["data=digits", f"{group}={name}", f"trainer.max_epochs={epochs}", *EXTRA.get((group, name), [])]


def run(group: str, name: str, epochs: int, workdir: Path) -> dict:
    run_dir = workdir / name
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainlab",
            *overrides(group, name, epochs),
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
        lines = done.stderr.strip().splitlines()
        return {"name": name, "error": lines[-1] if lines else f"exit {done.returncode}"}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {"name": name, "seconds": seconds, **metrics}


def table(group: str, rows: list[dict], epochs: int) -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    command = f"python -m trainlab data=digits {group}=<name> trainer.max_epochs={epochs}"
    lines = [
        f"`{command}` (shipped defaults, the default recipe otherwise), measured by `scripts/zoo.py {group}` "
        f"on {platform.machine()}, {cores} CPU cores:",
        "",
        f"| {group} | val/acc | val/acc_best | test/acc | epochs | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        extra = " ".join(EXTRA.get((group, row["name"]), []))
        label = f"`{row['name']}`" + (f" (`{extra}`)" if extra else "")
        if "error" in row:
            lines.append(f"| {label} | failed: {row['error']} | | | | |")
            continue
        scores = " | ".join(f"{row[key]:.4f}" for key in ("val/acc", "val/acc_best", "test/acc"))
        lines.append(f"| {label} | {scores} | {row['epochs']} | {row['seconds']:.1f} |")
    return "\n".join(lines)


def write_readme(group: str, text: str) -> None:
    start, end = f"<!-- {group}-zoo:start -->", f"<!-- {group}-zoo:end -->"
    readme = README.read_text()
    head, rest = readme.split(start, 1)
    _, tail = rest.split(end, 1)
    README.write_text(f"{head}{start}\n{text}\n{end}{tail}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("group", choices=["loss", "optim", "scheduler", "model"])
    parser.add_argument("--only", nargs="*", default=None, help="run these options only (no README update)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--target", type=float, default=0.90)
    parser.add_argument("--check", action="store_true", help="exit 1 if an option misses --target")
    args = parser.parse_args()
    names = args.only or shipped_options(args.group)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            rows.append(run(args.group, name, args.epochs, Path(tmp)))
            print(
                json.dumps({k: rows[-1].get(k) for k in ("name", "val/acc", "seconds", "error")}), flush=True
            )
    text = table(args.group, rows, args.epochs)
    print(text)
    if args.only is None and f"<!-- {args.group}-zoo:start -->" in README.read_text():
        write_readme(args.group, text)
    missed = [r["name"] for r in rows if "error" in r or r["val/acc"] < args.target]
    if missed:
        print(f"below val/acc {args.target}: {', '.join(missed)}", file=sys.stderr)
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
