"""`python -m trainlab.predict ckpt_path=FILE inputs=PATH`: classify image files with a trained checkpoint.

    python -m trainlab.predict ckpt_path=outputs/.../checkpoints/last.ckpt inputs=data/rmb/RMB_data/100
    options: inputs=<image file or folder, searched recursively>, out=FILE.csv (default
    outputs/predict/<date>/<time>/predictions.csv), batch_size=N (64)

Each image goes through the run's own evaluation transforms (from the config in the checkpoint), so
it is seen as the validation images were, then resized to the run's image_size if those transforms
leave it at another size. Writes a CSV of file, predicted class name and its probability (the softmax
of the loss's class scores), and prints a count per predicted class.
"""

from __future__ import annotations

import datetime
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig

from trainlab.atomic import atomic_write_csv
from trainlab.checkpoints.restore import (
    apply_overrides,
    load_run_checkpoint,
    parse_key_values,
    rebuild_module,
)
from trainlab.core.logs import quiet_lightning
from trainlab.data.datasets import read_image
from trainlab.data.imagefolder import IMAGE_SUFFIXES, is_image
from trainlab.data.transforms import compose
from trainlab.errors import ConfigError, DataError, TrainlabError, asked_for_help, exit_code

USAGE = "python -m trainlab.predict ckpt_path=FILE inputs=IMAGE_OR_DIR [out=FILE.csv] [batch_size=N]"


def find_images(inputs: Path) -> list[Path]:
    if inputs.is_file():
        if inputs.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(f"{inputs} is not an image file ({', '.join(sorted(IMAGE_SUFFIXES))}).")
        return [inputs]
    if not inputs.is_dir():
        raise DataError(f"inputs={inputs} does not exist: give an image file or a folder of images.")
    files = sorted(p for p in inputs.rglob("*") if is_image(p))
    if not files:
        raise DataError(f"{inputs} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))}).")
    return files


class ImageLoader:
    """A file -> the model's input tensor, exactly as the run prepared its validation images."""

    def __init__(self, cfg: DictConfig) -> None:
        self.image_size = int(cfg.data.image_size)
        self.mode = "L" if int(cfg.data.in_channels) == 1 else "RGB"
        steps = instantiate(cfg.data.get("eval_transforms"), _convert_="all")
        self.transform = compose(steps, self.image_size)

    def __call__(self, path: Path) -> torch.Tensor:
        tensor = self.transform(read_image(path, self.mode, advice="Remove or replace it."))
        if tuple(tensor.shape[-2:]) != (self.image_size, self.image_size):
            size = (self.image_size, self.image_size)
            tensor = F.interpolate(tensor[None], size=size, mode="bilinear", antialias=True)[0]
        return tensor


def predict(ckpt_path: Path, inputs: Path, out: Path, batch_size: int, overrides: Sequence[str]) -> list:
    checkpoint, cfg, classes = load_run_checkpoint(ckpt_path)
    apply_overrides(cfg, overrides, ckpt_path)
    module = rebuild_module(checkpoint, cfg, classes, ckpt_path)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    module.to(device)
    load = ImageLoader(cfg)
    files = find_images(inputs)
    rows = []
    with torch.inference_mode():
        for start in range(0, len(files), batch_size):
            chunk = files[start : start + batch_size]
            images = torch.stack([load(path) for path in chunk]).to(device)
            probabilities = module.loss.probabilities(module.eval_outputs(images)).cpu()
            best, index = probabilities.max(dim=1)
            rows += [(p, classes[i], float(b)) for p, i, b in zip(chunk, index.tolist(), best, strict=True)]
    write_csv(out, rows)
    print(summary(rows, ckpt_path, out))
    return rows


def write_csv(out: Path, rows: Sequence[tuple[Path, str, float]]) -> None:
    table = [
        {"file": str(path), "predicted": name, "probability": f"{prob:.6f}"} for path, name, prob in rows
    ]
    try:
        atomic_write_csv(out, table, fieldnames=["file", "predicted", "probability"])
    except OSError as err:
        raise TrainlabError(f"Cannot write predictions to {out}: {err}. Pick another out=FILE.csv.") from err


def summary(rows: Sequence[tuple[Path, str, float]], ckpt_path: Path, out: Path) -> str:
    counts = Counter(name for _, name, _ in rows)
    mean_prob = sum(prob for *_, prob in rows) / len(rows)
    lines = [f"trainlab.predict: {len(rows)} images with {ckpt_path}"]
    lines += [f"  {name}: {count}" for name, count in sorted(counts.items())]
    lines.append(f"  mean probability of the predicted class {mean_prob:.4f}")
    if len(rows) <= 10:
        lines += [f"  {path.name}: {name} ({prob:.4f})" for path, name, prob in rows]
    lines.append(f"  wrote {out}")
    return "\n".join(lines)


def default_out() -> Path:
    now = datetime.datetime.now()
    return (
        Path("outputs") / "predict" / now.strftime("%Y-%m-%d") / now.strftime("%H-%M-%S") / "predictions.csv"
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if asked_for_help(argv, __doc__):
        return 0
    quiet_lightning()
    return exit_code(lambda: predict_command(argv))


def predict_command(argv: Sequence[str]) -> None:
    defaults = {"ckpt_path": None, "inputs": None, "out": "", "batch_size": "64"}
    options, overrides = parse_key_values(argv, defaults, USAGE)
    if not options["batch_size"].isdigit() or int(options["batch_size"]) < 1:
        raise ConfigError(f"batch_size={options['batch_size']} is invalid: expected an integer >= 1.")
    predict(
        Path(options["ckpt_path"]).expanduser(),
        Path(options["inputs"]).expanduser(),
        Path(options["out"]).expanduser() if options["out"] else default_out(),
        int(options["batch_size"]),
        overrides,
    )


if __name__ == "__main__":
    sys.exit(main())
