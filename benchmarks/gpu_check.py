"""GPU check: every GPU path of trainlab run once through the real CLI, in one table, and the fast recipe
against the `airbench` package's airbench94 on the same GPU and the same images.

    python benchmarks/gpu_check.py --data ../shared/data/cifar10-train   # a CUDA machine, ~8 min on one H200
    python benchmarks/gpu_check.py --quick                               # CPU, generated images (the tests)

Data: a folder of CIFAR-10 JPEGs in class subfolders (`data=cifar10_jpeg`): 45,000 to train on and a
stratified 5,000 held out, the split trainlab makes; airbench94 gets the very same two sets (written in
its own `cifar10/{train,test}.pt` format), so both score the same 5,000 images. Without --data (or with
--quick) a generated folder of random images stands in: that checks the mechanics only.

Rows:
- **pipeline**: training img/s of `data.pipeline=batched` (uint8 batches augmented on the GPU) against
  `data.pipeline=torchvision` (decode and augment per image in DataLoader workers);
- **precision / memory format / compile**: the `cifar10_fast` network and batch in fp32, channels_last,
  bf16-mixed, both, and both plus `perf.compile=true`, img/s and the ratio to fp32;
- **NaN guard**: ms per training step with and without the guard's one host sync (the same loop, timed
  in-process, since the CLI has no switch to turn the guard off);
- **exact resume**: `trainer.deterministic=true`, a run stopped by SIGTERM mid-epoch and resumed with
  `ckpt_path=last` against one that was not stopped: every tensor of the final checkpoint compared;
- **DDP**: `trainer=ddp` over all GPUs of the machine;
- **time to accuracy**: `experiment=cifar10_fast` (as is, and widened) against airbench94, held-out
  accuracy and seconds from launch, with the time each first reached 94% where it did.

img/s come from the runs' TensorBoard events (images per logging interval over its wall time, the first
interval dropped, median), so start-up and decoding are outside them. CUDA-only rows are skipped, and say
so, on a machine without CUDA; so is airbench where the package is not installed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
from common import REPO, SHARED, machine, table
from lightning.pytorch.callbacks import Callback
from overhead import window_rates
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from time_to_accuracy import generated_folder
from torch import nn

BENCHMARKS = Path(__file__).resolve().parent
CHECKS = ("pipeline", "speed", "nan_guard", "resume", "ddp", "recipe", "airbench")  # names for --skip
TARGET = 0.94
LOG_EVERY = 10


class SigtermAtStep(Callback):
    """A run of the resume check sends itself SIGTERM at optimizer step `step`, as a cluster's time limit
    would; trainlab finishes the step, saves last.ckpt and exits 143."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


class Checker:
    """Runs the CLI on one data folder and device, keeping every run's output under `work`."""

    def __init__(self, data: Path, work: Path, cuda: bool, quick: bool) -> None:
        self.data, self.work, self.cuda, self.quick = data, work, cuda, quick
        self.steps = 4 if quick else 40  # timed training steps per speed run
        self.log_every = 2 if quick else LOG_EVERY
        self.batch = 32 if quick else 512
        self.rows: list[list[str]] = []

    def cli(self, name: str, overrides: Sequence[str], check: bool = True) -> tuple[Path, float, str]:
        """One `python -m trainlab` run in work/name: (run dir, seconds from launch, console tail)."""
        run_dir = self.work / name
        device = (
            []
            if any(o.startswith("trainer=") for o in overrides)
            else ["trainer=gpu" if self.cuda else "trainer=cpu"]
        )
        base = [
            "data=cifar10_jpeg", f"data.root={self.data}", f"data.cache_dir={self.work / 'decoded'}",
            *device, "test=false", "trainer.enable_progress_bar=false", "~callbacks.figures",
            f"trainer.log_every_n_steps={self.log_every}", f"hydra.run.dir={run_dir}",
        ]  # fmt: skip
        if self.quick and not any(o.startswith("trainer.precision=") for o in overrides):
            # bf16 on a CPU that other processes share (the test suite) can be many times slower than fp32
            base += ["trainer.precision=32-true", "perf.channels_last=false"]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(BENCHMARKS), os.environ.get("PYTHONPATH", "")]),
        }
        launched = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "trainlab", *base, *overrides],
            cwd=REPO, capture_output=True, text=True, env=env,
        )  # fmt: skip
        seconds = time.perf_counter() - launched
        tail = (done.stdout + done.stderr)[-2500:]
        if check and done.returncode != 0:
            raise RuntimeError(f"`{name}` exited {done.returncode}:\n{tail}")
        return run_dir, seconds, tail

    def speed(self, name: str, overrides: Sequence[str]) -> float:
        """Training img/s of a short run: median over its logging intervals, the first one dropped."""
        batch, steps = self.batch, self.steps + 2 * self.log_every
        run_dir, _, _ = self.cli(
            name,
            [
                *overrides, f"trainer.max_steps={steps}", "trainer.limit_val_batches=1",
                "trainer.num_sanity_val_steps=0", f"data.batch_size={batch}",
            ],
        )  # fmt: skip
        return batch * statistics.median(window_rates(run_dir / "tensorboard", "train/loss_step"))

    def add(self, check: str, setting: str, result: str, numbers: str) -> None:
        self.rows.append([check, setting, result, numbers])
        print(f"| {check} | {setting} | {result} | {numbers} |", flush=True)

    def attempt(self, check: str, setting: str, body: Callable[[], tuple[str, str]]) -> None:
        """A failing check is a row of the table (with its error), not the end of the script."""
        started = time.perf_counter()
        try:
            result, numbers = body()
        except Exception as error:  # the table reports every failure and goes on
            result, numbers = "FAILED", " ".join(str(error).split())[-400:]
        print(f"  ({check}, {setting}: {time.perf_counter() - started:.0f} s)", file=sys.stderr)
        self.add(check, setting, result, numbers)

    def skip(self, check: str, setting: str, why: str) -> None:
        self.add(check, setting, "skipped", why)


def check_pipeline(c: Checker) -> tuple[str, str]:
    batched = c.speed("pipeline_batched", ["experiment=cifar10_fast"])
    workers = 2 if c.quick else min(8, os.cpu_count() or 1)
    per_image = c.speed(
        "pipeline_torchvision",
        ["experiment=cifar10_fast", "data.pipeline=torchvision", f"data.num_workers={workers}"],
    )
    return "ok", (
        f"batched {batched:,.0f} img/s, torchvision per image ({workers} workers) {per_image:,.0f} img/s: "
        f"{batched / per_image:.2f}x"
    )


SPEED_OPTIONS = {
    "fp32": ["trainer.precision=32-true", "perf.channels_last=false"],
    "channels_last": ["trainer.precision=32-true", "perf.channels_last=true"],
    "bf16-mixed": ["trainer.precision=bf16-mixed", "perf.channels_last=false"],
    "bf16-mixed + channels_last (the recipe)": ["trainer.precision=bf16-mixed", "perf.channels_last=true"],
    "bf16-mixed + channels_last + compile": [
        "trainer.precision=bf16-mixed", "perf.channels_last=true", "perf.compile=true",
    ],
}  # fmt: skip


def check_speed_options(c: Checker) -> None:
    baseline = None
    for number, (option, overrides) in enumerate(SPEED_OPTIONS.items()):
        if c.quick and option != "fp32":
            # benchmarks/options.py measures them on a CPU; here they would only slow the test suite down
            c.skip("speed option", option, "--quick (benchmarks/options.py measures it on a CPU)")
            continue

        def body(number: int = number, overrides: list[str] = overrides) -> tuple[str, str]:
            nonlocal baseline
            rate = c.speed(f"speed{number}", ["experiment=cifar10_fast", *overrides])
            baseline = baseline or rate
            return "ok", f"{rate:,.0f} img/s, {rate / baseline:.2f}x fp32"

        c.attempt("speed option", option, body)


def check_nan_guard(c: Checker) -> tuple[str, str]:
    """ms/step of the recipe's network with and without `bool(torch.isfinite(loss).all())` per step."""
    from trainlab.models.fastnet import FastNet

    device = torch.device("cuda" if c.cuda else "cpu")
    batch, steps, warmup = (c.batch, 4, 2) if c.quick else (c.batch, 100, 20)
    torch.manual_seed(0)
    net = FastNet(widths=(48, 96, 192), stem_width=24, activation=nn.ReLU).to(device)
    net = net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    images = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (batch,), device=device)

    def ms_per_step(guard: bool) -> float:
        for step in range(warmup + steps):
            if step == warmup:
                sync(device)
                started = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = nn.functional.cross_entropy(net(images), labels)
            if guard and not bool(torch.isfinite(loss.detach()).all()):
                raise RuntimeError("non-finite loss in the NaN guard check")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        sync(device)
        return 1000 * (time.perf_counter() - started) / steps

    rounds = [(ms_per_step(False), ms_per_step(True)) for _ in range(1 if c.quick else 3)]
    without = statistics.median(r[0] for r in rounds)
    with_guard = statistics.median(r[1] for r in rounds)
    return "ok", (
        f"{with_guard:.2f} ms/step with the guard, {without:.2f} without: "
        f"{with_guard - without:+.3f} ms ({100 * (with_guard / without - 1):+.1f}%), batch {batch}"
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def check_exact_resume(c: Checker) -> tuple[str, str]:
    """A deterministic run stopped by SIGTERM mid-epoch and resumed ends bit for bit like one that was not."""
    epochs, batches = (2, 4) if c.quick else (2, 30)
    stop_at = batches + batches // 2  # mid-way through the second epoch
    common = [
        "experiment=cifar10_fast", "trainer.deterministic=true", f"trainer.max_epochs={epochs}",
        f"trainer.limit_train_batches={batches}", "trainer.limit_val_batches=2",
        "trainer.num_sanity_val_steps=0", "logger=none",
        f"data.batch_size={c.batch}",
    ]  # fmt: skip
    whole, _, _ = c.cli("resume_whole", common)
    stop = f"+callbacks.stop={{_target_:gpu_check.SigtermAtStep,step:{stop_at}}}"
    stopped, _, tail = c.cli("resume_stopped", [*common, stop], check=False)
    if not (stopped / "checkpoints" / "last.ckpt").is_file():
        raise RuntimeError(f"the stopped run left no last.ckpt:\n{tail}")
    saved_step = torch.load(stopped / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)[
        "global_step"
    ]
    c.cli("resume_stopped", [*common, "ckpt_path=last"])
    a = torch.load(whole / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    b = torch.load(stopped / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    tensors = [k for k, v in a["state_dict"].items() if torch.is_tensor(v)]
    differ = [k for k in tensors if not torch.equal(a["state_dict"][k], b["state_dict"][k])]
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (whole, stopped)]
    same_metrics = all(metrics[0][k] == metrics[1][k] for k in ("train/loss", "val/loss", "val/acc"))
    where = f"stopped at step {saved_step} of {epochs * batches}, resumed"
    if differ or not same_metrics:
        return (
            "DIFFERS",
            f"{where}: {len(differ)}/{len(tensors)} tensors differ ({differ[:3]}), metrics {metrics}",
        )
    return "ok", f"{where}: all {len(tensors)} tensors and train/val loss and acc identical"


def check_ddp(c: Checker) -> tuple[str, str]:
    gpus = torch.cuda.device_count()
    rate = c.speed("ddp", ["experiment=cifar10_fast", "trainer=ddp"])
    return "ok", f"{gpus} GPU process(es), global batch {c.batch}: {rate:,.0f} img/s"


def first_reach(run_dir: Path, launched_to_start: float, target: float) -> tuple[float, float | None]:
    """(last val/acc, seconds from launch when val/acc first reached target, or None)."""
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    accs = events.Scalars("val/acc")
    start = events.FirstEventTimestamp()
    reached = next((a.wall_time - start + launched_to_start for a in accs if a.value >= target), None)
    return accs[-1].value, reached


def check_recipe(c: Checker, name: str, overrides: list[str]) -> tuple[str, str]:
    launched = time.time()
    run_dir, seconds, _ = c.cli(name, ["experiment=cifar10_fast", *overrides])
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    to_start = events.FirstEventTimestamp() - launched
    acc, reached = first_reach(run_dir, to_start, TARGET)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    to_target = f"{TARGET:.0%} at {reached:.1f} s" if reached is not None else f"{TARGET:.0%} not reached"
    return "ok", (
        f"val/acc {acc:.4f} after {metrics['epochs']} epochs, {seconds:.1f} s from launch "
        f"({metrics['wall_s']:.1f} s training), {to_target}"
    )


def airbench_data(c: Checker, root: Path) -> None:
    """The held-out split trainlab makes, written as airbench's cifar10/{train,test}.pt."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    with initialize_config_dir(str(REPO / "src" / "trainlab" / "conf"), version_base=None):
        cfg = compose(
            "train",
            overrides=["data=cifar10_jpeg", f"data.root={c.data}", f"data.cache_dir={c.work / 'decoded'}"],
        )
    dm = instantiate(cfg.data, _convert_="all")
    dm.setup("fit")
    classes = dm.classes
    root.mkdir(parents=True, exist_ok=True)
    for name, dataset in (("train", dm.splits.train), ("test", dm.splits.val)):
        # trainlab's splits are sorted by class; airbench whitens with its first 5,000 training images, so
        # they must be a random sample, as in the official batches
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))
        images = dataset.images[order].permute(0, 2, 3, 1).contiguous()  # airbench keeps (N, H, W, C)
        torch.save(
            {"images": images, "labels": dataset.labels[order], "classes": classes}, root / f"{name}.pt"
        )


def check_airbench(c: Checker) -> tuple[str, str]:
    """airbench94 as its package ships it, on trainlab's split; its timer and seconds from launch."""
    work = c.work / "airbench"
    airbench_data(c, work / "cifar10")
    code = (
        "import time, torch, airbench; t = time.perf_counter(); "
        "airbench.warmup94(verbose=False); "  # its own benchmark protocol: compile/warm up, then time
        "w = time.perf_counter() - t; model = airbench.train94(verbose=True); "
        "test = airbench.CifarLoader('cifar10', train=False, batch_size=2000); "
        "print('RESULT', airbench.evaluate(model, test, tta_level=2), time.perf_counter() - t, w)"
    )
    launched = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True)
    seconds = time.perf_counter() - launched
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-1500:])
    result = next(line for line in done.stdout.splitlines() if line.startswith("RESULT"))
    _, acc, _, warmup = result.split()
    timed = [line for line in done.stdout.splitlines() if "eval" in line]
    own = timed[-1].split("|")[-2].strip() if timed else "?"
    return "ok", (
        f"val/acc {float(acc):.4f} (tta level 2), {seconds:.1f} s from launch "
        f"({float(warmup):.1f} s warm-up), its own timer {own} s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", type=Path, help="CIFAR-10 JPEG folder (default: ../shared/data/cifar10-train)"
    )
    parser.add_argument("--quick", action="store_true", help="generated images, few steps, no CUDA-only rows")
    parser.add_argument("--skip", default="", help="comma-separated checks to leave out, e.g. airbench,ddp")
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available()
    skip = set(filter(None, args.skip.split(",")))
    if skip - set(CHECKS):
        parser.error(f"--skip {','.join(sorted(skip - set(CHECKS)))}: the checks are {','.join(CHECKS)}")
    print(machine())
    if cuda:
        print(f"GPU: {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}, CUDA {torch.version.cuda}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = args.data or SHARED / "cifar10-train"
        if args.quick or not data.is_dir():
            data = generated_folder(work / "images", per_class=20 if args.quick else 500)
        print(f"data: {data}\n")
        c = Checker(data.resolve(), work, cuda, args.quick)
        print(table(["check", "setting", "result", "numbers"], []))
        if "pipeline" in skip:
            pass
        elif args.quick:
            c.skip("pipeline", "batched vs torchvision", "--quick (benchmarks/data.py --quick measures it)")
        else:
            c.attempt("pipeline", "batched vs torchvision", lambda: check_pipeline(c))
        if "speed" not in skip:
            check_speed_options(c)
        if "nan_guard" not in skip:
            c.attempt("NaN guard", "nonfinite_loss=stop", lambda: check_nan_guard(c))
        if "resume" not in skip:
            c.attempt("exact resume", "trainer.deterministic=true", lambda: check_exact_resume(c))
        if "ddp" in skip:
            pass
        elif cuda:
            c.attempt("DDP", "trainer=ddp (all GPUs)", lambda: check_ddp(c))
        else:
            c.skip("DDP", "trainer=ddp (all GPUs)", "needs CUDA (CPU DDP: trainer=ddp_cpu, in the tests)")
        if "recipe" in skip:
            pass
        elif args.quick:
            c.skip(
                "time to accuracy", "experiment=cifar10_fast", "--quick (time_to_accuracy.py --quick runs it)"
            )
        else:
            c.attempt("time to accuracy", "experiment=cifar10_fast", lambda: check_recipe(c, "recipe", []))
            if cuda:
                wide = ["model.widths=[64,256,256]", "model.stem_width=32", "trainer.max_epochs=16"]
                c.attempt(
                    "time to accuracy",
                    "cifar10_fast, widths 64/256/256, 16 epochs",
                    lambda: check_recipe(c, "recipe_wide", wide),
                )
        if "airbench" in skip:
            pass
        elif not cuda:
            c.skip("time to accuracy", "airbench94", "needs CUDA")
        elif importlib_spec("airbench") is None:
            c.skip("time to accuracy", "airbench94", "the airbench package is not installed")
        else:
            c.attempt("time to accuracy", "airbench94 (the airbench package)", lambda: check_airbench(c))
    failed = [row for row in c.rows if row[2] in ("FAILED", "DIFFERS")]
    print(f"\n{len(c.rows)} rows, {len(failed)} failed")
    return 1 if failed else 0


def importlib_spec(name: str) -> Any:
    import importlib.util

    return importlib.util.find_spec(name)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
