"""Stop a run at random steps, resume each, and check every metrics.json equals the uninterrupted run's.

    python scripts/resume_stops.py                 # 20 crashes, 3 SIGTERMs, 4 kill -9s at random steps
    python scripts/resume_stops.py --quick         # 4 crashes, 1 SIGTERM, 1 kill -9 (what the tests run)
    python scripts/resume_stops.py --seed 7 --keep DIR

Two ways a run stops, both through the real CLI (`python -m trainlab`, lenet on digits, 4 epochs of 6
batches, `trainer.deterministic=true`):
- crash: the process dies with an exception once `step` optimizer steps are done, resuming from the
  last.ckpt written after every step (`callbacks.last_checkpoint.every_n_train_steps=1`); all crash runs
  are one `-m` sweep, and so are their resumes;
- SIGTERM: the run receives SIGTERM during step `step`, saves last.ckpt and exits 143 (trainlab's own
  signal handling), then resumes with `ckpt_path=last`;
- kill -9: the process is killed with SIGKILL (nothing runs after it, as with the OOM killer) when step
  `step` would begin, and resumes from the last.ckpt written after every step.
Stop steps are drawn without replacement from the run's steps, epoch-end batches included. Prints one
row per stop and exits 1 if any resumed run's metrics.json differs from the uninterrupted run's, or a
partial file (`.*.partial`) is left in its run dir.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import lightning.pytorch as L
from lightning.pytorch.callbacks import Callback

EPOCHS, STEPS_PER_EPOCH = 4, 6
COMMON = [
    "model=lenet",
    f"trainer.max_epochs={EPOCHS}",
    f"trainer.limit_train_batches={STEPS_PER_EPOCH}",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.deterministic=true",
    "trainer.enable_progress_bar=false",
    "trainer.num_sanity_val_steps=0",
    "logger=none",
    "~callbacks.figures",
]
EVERY_STEP = [
    "callbacks.last_checkpoint.every_n_train_steps=1",
    "callbacks.last_checkpoint.every_n_epochs=null",
]


class KillAtStep(Callback):
    """SIGKILL to this process when optimizer step `step` would begin."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class CrashAtStep(Callback):
    """Raises once `step` optimizer steps are done, before the next one."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError(f"resume_stops: crashed after step {self.step}")


class SignalAtStep(Callback):
    """Sends the process SIGTERM while step `step` (0-based) runs."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: Any) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def trainlab(*overrides: str, cwd: Path, multirun: bool = False) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]),
    }
    env.setdefault("OMP_NUM_THREADS", "1")
    command = [sys.executable, "-m", "trainlab", *(["-m"] if multirun else []), *COMMON, *overrides]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)


def comparable(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "metrics.json"
    if not path.is_file():
        return None
    values = json.loads(path.read_text())
    values.pop("wall_s", None)
    for key in ("best_ckpt", "last_ckpt"):
        values[key] = values.get(key) and Path(values[key]).name
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stops", type=int, default=20, help="crash stops (default 20)")
    parser.add_argument("--signals", type=int, default=3, help="SIGTERM stops (default 3)")
    parser.add_argument("--kills", type=int, default=4, help="kill -9 stops (default 4)")
    parser.add_argument("--quick", action="store_true", help="4 crashes, 1 SIGTERM, 1 kill -9")
    parser.add_argument("--seed", type=int, default=None, help="draws the stop steps (default: random)")
    parser.add_argument("--keep", type=Path, default=None, help="run dirs go here (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.quick:
        args.stops, args.signals, args.kills = 4, 1, 1
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    draw = random.Random(seed)
    total = EPOCHS * STEPS_PER_EPOCH
    crashes = sorted(draw.sample(range(1, total), min(args.stops, total - 1)))
    signals = sorted(draw.sample(range(total - 1), min(args.signals, total - 1)))
    kills = sorted(draw.sample(range(1, total), min(args.kills, total - 1)))
    root = args.keep or Path(tempfile.mkdtemp(prefix="resume_stops-"))
    root.mkdir(parents=True, exist_ok=True)
    print(
        f"seed {seed}; crash after steps {crashes}; SIGTERM during steps {signals}; kill -9 before steps "
        f"{kills}; runs in {root}"
    )

    done = trainlab(f"hydra.run.dir={root / 'straight'}", cwd=root)
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        return 1
    expected = comparable(root / "straight")
    rows: list[tuple[str, int, str]] = []
    if crashes:
        sweep = [
            f"hydra.sweep.dir={root / 'crash'}",
            "hydra.sweep.subdir=step${stop}",
            f"+stop={','.join(map(str, crashes))}",
            *EVERY_STEP,
        ]
        crash = "+callbacks.crash={_target_:resume_stops.CrashAtStep,step:${stop}}"
        trainlab(*sweep, crash, cwd=root, multirun=True)  # every job dies: a non-zero exit
        trainlab(*sweep, "ckpt_path=last", cwd=root, multirun=True)
        rows += [("crash", step, verdict(root / "crash" / f"step{step}", expected)) for step in crashes]
    for step in signals:
        run_dir = root / f"sigterm{step}"
        stopped = trainlab(
            f"hydra.run.dir={run_dir}",
            f"+callbacks.signal={{_target_:resume_stops.SignalAtStep,step:{step}}}",
            cwd=root,
        )
        if stopped.returncode != 143:
            rows.append(("SIGTERM", step, f"exit {stopped.returncode}, not 143"))
            continue
        trainlab(f"hydra.run.dir={run_dir}", "ckpt_path=last", cwd=root)
        rows.append(("SIGTERM", step, verdict(run_dir, expected)))
    for step in kills:
        run_dir = root / f"kill{step}"
        killed = trainlab(
            f"hydra.run.dir={run_dir}",
            *EVERY_STEP,
            f"+callbacks.kill={{_target_:resume_stops.KillAtStep,step:{step}}}",
            cwd=root,
        )
        if killed.returncode != -signal.SIGKILL:
            rows.append(("kill -9", step, f"exit {killed.returncode}, not killed"))
            continue
        trainlab(f"hydra.run.dir={run_dir}", *EVERY_STEP, "ckpt_path=last", cwd=root)
        rows.append(("kill -9", step, verdict(run_dir, expected)))

    print("| stop | step | metrics.json |\n|---|---|---|")
    for kind, step, result in rows:
        print(f"| {kind} | {step} | {result} |")
    equal = sum(result == "equal" for *_, result in rows)
    print(f"{equal} of {len(rows)} resumed runs end with the uninterrupted run's metrics.json")
    return 0 if equal == len(rows) else 1


def verdict(run_dir: Path, expected: dict[str, Any] | None) -> str:
    partial = sorted(p.name for p in run_dir.rglob(".*.partial"))
    if partial:
        return f"partial files left: {', '.join(partial)}"
    got = comparable(run_dir)
    if got is None:
        return "missing"
    if got == expected:
        return "equal"
    keys = sorted(k for k in expected or {} if got.get(k) != (expected or {}).get(k))
    return "differs: " + ", ".join(f"{k} {got.get(k)} vs {expected[k]}" for k in keys)


if __name__ == "__main__":
    sys.exit(main())
