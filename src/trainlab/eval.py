"""`python -m trainlab.eval ckpt_path=FILE`: test a trained checkpoint, with per-class results.

    python -m trainlab.eval ckpt_path=outputs/2026-11-24/10-00-00/checkpoints/last.ckpt
    options: split=test|val (default test), out=DIR, and any key of the run config to change, e.g.
    data.root=DIR (the data moved) or data.batch_size=256

The model, loss and data are rebuilt from the config stored in the checkpoint, so the split is the
one the run was tested on. Writes into DIR (default <run dir>/eval-<split>-<checkpoint name>):
metrics.json (accuracy, loss, per-class precision/recall/F1/support), per_class.csv,
confusion_matrix.csv and confusion_matrix.png; prints the table.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import numpy as np
import torch
from sklearn.metrics import precision_recall_fscore_support

from trainlab.atomic import atomic_write_csv
from trainlab.checkpoints.restore import (
    apply_overrides,
    load_run_checkpoint,
    parse_key_values,
    rebuild_module,
)
from trainlab.core.build import build
from trainlab.core.logs import quiet_lightning
from trainlab.data.base import ImageDataModule
from trainlab.errors import ConfigError, DataError, TrainlabError, asked_for_help, exit_code
from trainlab.loggers.plots import confusion_matrix_figure, save_figure
from trainlab.records.files import to_number, write_json

USAGE = "python -m trainlab.eval ckpt_path=FILE [split=test|val] [out=DIR] [data.KEY=VALUE ...]"
SPLITS = ("test", "val")


def class_report(matrix: torch.Tensor, classes: Sequence[str]) -> list[dict[str, Any]]:
    """Precision, recall, F1 and support per class from a confusion matrix (rows true, columns predicted),
    by scikit-learn's `precision_recall_fscore_support` with zero_division=0: a class never predicted
    has precision 0 (never present, recall 0), so one empty class does not make the macro average NaN."""
    counts = matrix.long().numpy()
    k = len(classes)
    # the (true, predicted) pair of every sample, recovered from the matrix cell it was counted in
    true, predicted = np.divmod(np.repeat(np.arange(k * k), counts.ravel()), k)
    if true.size == 0:
        precision = recall = f1 = support = np.zeros(k)
    else:
        precision, recall, f1, support = precision_recall_fscore_support(
            true, predicted, labels=np.arange(k), zero_division=0
        )
    return [
        {
            "class": name,
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(classes)
    ]


def macro_average(report: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The unweighted mean over classes (scikit-learn's average="macro")."""
    return {key: float(np.mean([row[key] for row in report])) for key in ("precision", "recall", "f1")}


def split_loader(datamodule: ImageDataModule, split: str) -> Iterable:
    if split not in SPLITS:
        raise ConfigError(f"split={split} is unknown: use one of {', '.join(SPLITS)}.")
    if split == "test" and not datamodule.has_test_split:
        raise DataError(f"{type(datamodule).__name__} has no test split here: evaluate with split=val.")
    loader = datamodule.test_dataloader() if split == "test" else datamodule.val_dataloader()
    return datamodule.model_ready(loader)


def evaluate(ckpt_path: Path, split: str, out: Path | None, overrides: Sequence[str]) -> dict[str, Any]:
    checkpoint, cfg, classes = load_run_checkpoint(ckpt_path)
    apply_overrides(cfg, overrides, ckpt_path)
    datamodule = build("data", cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    if datamodule.classes != classes:
        raise DataError(
            f"The data has classes {datamodule.classes} but {ckpt_path} was trained on {classes}: "
            "point data.root at data with the same class folders."
        )
    loader = split_loader(datamodule, split)
    module = rebuild_module(checkpoint, cfg, classes, ckpt_path, datamodule.class_counts)
    # the run's config records the accelerator it trained on (e.g. cuda); evaluate wherever this is
    # run unless told otherwise on the command line
    asked = [o.split("=", 1)[1] for o in overrides if o.startswith("trainer.accelerator=")]
    trainer = L.Trainer(
        accelerator=asked[-1] if asked else "auto",
        devices=1,
        logger=False,
        callbacks=[],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    results = trainer.test(module, dataloaders=loader, verbose=False)[0]
    matrix = module.confusion_matrix("test")
    report = class_report(matrix, classes)
    metrics = {
        "checkpoint": str(ckpt_path),
        "split": split,
        "samples": int(matrix.sum()),
        f"{split}/acc": to_number(results["test/acc"]),
        f"{split}/loss": to_number(results["test/loss"]),
        "macro_avg": macro_average(report),
        "per_class": report,
        "overrides": list(overrides),
    }
    out = out or default_out_dir(ckpt_path, split)
    write_report(out, metrics, matrix, classes)
    print(format_report(metrics, out))
    return metrics


def default_out_dir(ckpt_path: Path, split: str) -> Path:
    """<run dir>/eval-<split>-<checkpoint name> for a run's checkpoint, else beside the file."""
    parent = ckpt_path.parent
    base = parent.parent if parent.name == "checkpoints" else parent
    return base / f"eval-{split}-{ckpt_path.stem}"


def write_report(out: Path, metrics: dict[str, Any], matrix: torch.Tensor, classes: Sequence[str]) -> None:
    try:
        write_json(out / "metrics.json", metrics)
        atomic_write_csv(out / "per_class.csv", metrics["per_class"])
        rows = [
            {"true": name, **dict(zip(classes, map(int, row), strict=True))}
            for name, row in zip(classes, matrix.tolist(), strict=True)
        ]
        atomic_write_csv(out / "confusion_matrix.csv", rows)
        title = f"{metrics['split']} split of {Path(metrics['checkpoint']).name}"
        save_figure(confusion_matrix_figure(matrix, classes, title), out / "confusion_matrix.png")
    except OSError as err:
        raise TrainlabError(f"Cannot write the evaluation to {out}: {err}. Pick another out=DIR.") from err


def format_report(metrics: dict[str, Any], out: Path) -> str:
    split = metrics["split"]
    lines = [
        f"trainlab.eval: {metrics['checkpoint']} on the {split} split ({metrics['samples']} samples)",
        f"  {split}/acc {metrics[f'{split}/acc']:.4f}  {split}/loss {metrics[f'{split}/loss']:.4f}",
        f"  {'class':<16} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}",
    ]
    for row in metrics["per_class"]:
        lines.append(
            f"  {row['class']:<16} {row['precision']:>9.4f} {row['recall']:>9.4f} {row['f1']:>9.4f} "
            f"{row['support']:>8}"
        )
    macro = metrics["macro_avg"]
    lines.append(
        f"  {'macro avg':<16} {macro['precision']:>9.4f} {macro['recall']:>9.4f} {macro['f1']:>9.4f}"
    )
    lines.append(f"  wrote metrics.json, per_class.csv, confusion_matrix.csv, confusion_matrix.png to {out}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if asked_for_help(argv, __doc__):
        return 0
    quiet_lightning()
    return exit_code(lambda: evaluate_command(argv))


def evaluate_command(argv: Sequence[str]) -> None:
    options, overrides = parse_key_values(argv, {"ckpt_path": None, "split": "test", "out": ""}, USAGE)
    out = Path(options["out"]).expanduser() if options["out"] else None
    evaluate(Path(options["ckpt_path"]).expanduser(), options["split"], out, overrides)


if __name__ == "__main__":
    sys.exit(main())
