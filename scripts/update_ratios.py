"""How three optimizers move the same network: per-layer update-to-weight ratios with `callbacks=watch`.

    python scripts/update_ratios.py            # digits + tudui, 3 epochs per optimizer
    python scripts/update_ratios.py --quick    # 1 epoch of 8 steps each (what the test suite runs)

Runs `python -m trainlab -m callbacks=watch optim=sgd,adam,rprop` (one sweep, the same seed and data
order for each), reads each job's TensorBoard scalars `watch/update_ratio/<parameter>` and prints, per
parameter tensor, the median ratio of each optimizer over the logged steps (the markdown table in the
README), and draws them per step into `--png` (default docs/update_ratios.png). rprop runs with its
full-batch config here, as `optim=rprop` does.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

REPO = Path(__file__).resolve().parents[1]
OPTIMIZERS = ("sgd", "adam", "rprop")
TAG = "watch/update_ratio/"


def sweep(out: Path, quick: bool) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """{optimizer: {parameter: [(step, ratio)]}} from one `-m` sweep into `out`."""
    # every step logged: rprop's full batches make only a few steps per epoch
    length = ["trainer.log_every_n_steps=1"]
    length += ["trainer.max_epochs=1", "trainer.limit_train_batches=8"] if quick else ["trainer.max_epochs=3"]
    command = [
        sys.executable,
        "-m",
        "trainlab",
        "-m",
        "callbacks=watch",
        f"optim={','.join(OPTIMIZERS)}",
        "test=false",
        f"hydra.sweep.dir={out}",
        *length,
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"the sweep failed:\n{done.stderr[-3000:]}")
    series = {}
    for job, name in enumerate(OPTIMIZERS):
        events = EventAccumulator(str(out / str(job) / "tensorboard"), size_guidance={"scalars": 0})
        events.Reload()
        series[name] = {
            tag.removeprefix(TAG): [(e.step, e.value) for e in events.Scalars(tag)]
            for tag in events.Tags()["scalars"]
            if tag.startswith(TAG)
        }
    return series


def table(series: dict[str, dict[str, list[tuple[int, float]]]]) -> str:
    lines = [
        "| parameter | " + " | ".join(f"`{name}`" for name in series) + " |",
        "|---|" + "---:|" * len(series),
    ]
    for parameter in next(iter(series.values())):
        cells = [statistics.median(v for _, v in series[name][parameter]) for name in series]
        lines.append(f"| `{parameter}` | " + " | ".join(f"{c:.2e}" for c in cells) + " |")
    return "\n".join(lines)


def figure(series: dict[str, dict[str, list[tuple[int, float]]]], png: Path) -> None:
    fig, axes = plt.subplots(1, len(series), figsize=(5 * len(series), 3.6), sharey=True)
    for ax, (name, parameters) in zip(axes, series.items(), strict=True):
        for parameter, points in parameters.items():
            if parameter.endswith(".weight"):
                ax.plot(*zip(*points, strict=True), marker=".", label=parameter.removesuffix(".weight"))
        ax.set_yscale("log")
        ax.axhline(1e-3, color="grey", linestyle=":", linewidth=1)
        ax.set_title(f"optim={name}")
        ax.set_xlabel("optimizer step")
    axes[0].set_ylabel("update / weight (L2 norms)")
    axes[-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 epoch of 8 steps per optimizer")
    parser.add_argument("--png", type=Path, default=REPO / "docs" / "update_ratios.png")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        series = sweep(Path(tmp) / "sweep", args.quick)
    print(table(series))
    figure(series, args.png)
    print(f"\nwrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
