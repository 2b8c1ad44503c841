"""DDP on CPU (trainer=ddp_cpu: 2 processes, gloo) against single-process runs of the same config.

Digits has 1,439 training and 179 validation images: the last global batch of every epoch is uneven
over two ranks (16 + 15) and the validation set cannot be split evenly, so padding or an unscaled last
batch would show. Run-length keys are pinned (cosine's T_max=3, as trainer.max_steps=46, which stops
the first runs after 2 epochs, would otherwise shorten the derived T_max), so "2 epochs, then resume to
3" must end where a straight 3-epoch run ends.

The runs use float64 (trainer.precision=64-true; 16x16 images keep that fast). DDP sums a batch's
gradient in another order than one process, and in float32 that rounding noise grows through training
to ~1e-3 in the weights (as much as between 1 and 2 CPU threads of one process): accuracies still
matched in every run measured, but a flip of one borderline sample would make the test flaky. In
float64 the runs agree to the last bit printed, so the weights are compared too, and any real
difference (a sample trained twice or not at all, an unscaled uneven batch) shows.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import torch

from conftest import run_cli

pytestmark = pytest.mark.slow

VAL_SIZE = 179
TWO_OF_THREE = ["trainer.max_epochs=3", "trainer.max_steps=46"]  # 23 global batches per epoch
EXACT = ["trainer.precision=64-true", "data.image_size=16", "test=true", "scheduler.scheduler.T_max=3"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Two epochs on 2 processes and on 1, each resumed on the other kind, and a straight 3-epoch run."""
    root = tmp_path_factory.mktemp("ddp")

    def run(name: str, *overrides: str):
        return run_cli([*EXACT, *overrides], cwd=root, run_dir=root / name).check()

    done = {
        "ddp": run("ddp", "trainer=ddp_cpu", *TWO_OF_THREE),
        "single": run("single", "trainer=cpu", *TWO_OF_THREE),
        "straight": run("straight", "trainer=cpu", "trainer.max_epochs=3"),
    }
    last = {name: root / name / "checkpoints" / "last.ckpt" for name in ("ddp", "single")}
    done["ddp_to_single"] = run(
        "ddp_to_single", "trainer=cpu", "trainer.max_epochs=3", f"ckpt_path={last['ddp']}"
    )
    done["single_to_ddp"] = run(
        "single_to_ddp", "trainer=ddp_cpu", "trainer.max_epochs=3", f"ckpt_path={last['single']}"
    )
    done["single_to_single"] = run(
        "single_to_single", "trainer=cpu", "trainer.max_epochs=3", f"ckpt_path={last['single']}"
    )
    done["root"] = root
    return done


def weights(run) -> dict[str, torch.Tensor]:
    return torch.load(run.run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def assert_same_weights(a, b, atol: float = 1e-12) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.allclose(wa[key], wb[key], rtol=0, atol=atol), (key, (wa[key] - wb[key]).abs().max())


def rank_lines(run_dir: Path) -> dict[int, tuple[str, dict]]:
    """{rank: (config digest, hparams)} from the 'rank R of W' line of each rank's log."""
    found = {}
    for log in sorted(run_dir.glob("train*.log")):
        for match in re.finditer(r"rank (\d+) of 2: config (\w+), hparams (\{.*\})", log.read_text()):
            found[int(match.group(1))] = (match.group(2), json.loads(match.group(3)))
    return found


def test_ddp_cpu_equals_one_process_with_the_same_global_batch(runs):
    ddp, single = runs["ddp"].metrics, runs["single"].metrics
    assert ddp["epochs"] == single["epochs"] == 2
    for key in ("val/acc", "val/acc_best", "train/acc", "test/acc"):
        assert abs(ddp[key] - single[key]) <= 1e-6, (key, ddp[key], single[key])
    assert abs(ddp["val/loss"] - single["val/loss"]) <= 1e-6
    assert_same_weights(runs["ddp"], runs["single"])
    # 179 validation images, each counted exactly once: padding to 180 would make it k/180
    correct = ddp["val/acc"] * VAL_SIZE
    assert abs(correct - round(correct)) < 1e-4, ddp["val/acc"]
    assert (
        "2 device(s) (2 per node x 1 nodes): global batch 64 = 32 per device"
        in runs["ddp"].stdout + runs["ddp"].stderr + (runs["ddp"].run_dir / "train.log").read_text()
    )


def test_ddp_writes_one_run_dir_once(runs):
    run_dir = runs["ddp"].run_dir
    assert sorted(p.name for p in runs["root"].iterdir() if p.is_dir()) == sorted(
        ["ddp", "single", "straight", "ddp_to_single", "single_to_ddp", "single_to_single"]
    ), "a rank created a run dir of its own"
    assert sorted(p.name for p in run_dir.glob("*.log")) == ["train.log", "train_rank1.log"]
    assert len(list((run_dir / ".hydra").glob("config.yaml"))) == 1
    best = Path(runs["ddp"].metrics["best_ckpt"]).name  # epochs counted from 1 in file names
    assert best.startswith("epoch00") and best.endswith(
        f"-val_acc{runs['ddp'].metrics['val/acc_best']:.4f}.ckpt"
    )
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [best, "last.ckpt"]
    events = list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    writers = {(path.parent, path.name.rsplit(".", 2)[1]) for path in events}  # (dir, process id)
    assert len(writers) == 1, f"TensorBoard written by more than one process or into several runs: {events}"
    assert json.loads((run_dir / "status.json").read_text())["status"] == "completed"
    ranks = rank_lines(run_dir)
    assert sorted(ranks) == [0, 1] and ranks[0] == ranks[1]


@pytest.mark.parametrize("resumed", ["ddp_to_single", "single_to_ddp"])
def test_a_checkpoint_resumes_on_the_other_number_of_devices(runs, resumed):
    straight, run = runs["straight"].metrics, runs[resumed]
    assert run.metrics["epochs"] == 3
    for key in ("val/acc", "val/acc_best", "train/acc"):
        assert abs(run.metrics[key] - straight[key]) <= 1e-6, (key, run.metrics[key], straight[key])
    trained = re.findall(r"epoch (\d)/3 \|", (run.run_dir / "train.log").read_text())
    assert trained == ["3"], "the resumed run must train only the third epoch"
    # the same weights as resuming on the kind of device the checkpoint came from
    assert_same_weights(run, runs["single_to_single"])
    # any resume in float64 ends ~1e-8 from the straight run (one process resuming itself too);
    # a resume that lost or repeated data or optimizer state would be off by orders of magnitude more
    assert_same_weights(run, runs["straight"], atol=1e-7)


def test_a_sweep_under_ddp_gives_every_job_one_run_dir_and_the_same_hparams_on_both_ranks(tmp_path):
    sweep = tmp_path / "sweep"
    done = run_cli(
        [
            "-m",
            "trainer=ddp_cpu",
            "trainer.max_epochs=1",
            "optim=sgd,adam",
            f"hydra.sweep.dir={sweep}",
            "trainer.enable_progress_bar=false",
            "test=false",
        ],
        cwd=tmp_path,
        run_dir=sweep,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep"], "a rank started a sweep of its own"
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    rows = {row["job"]: row for row in csv.DictReader((sweep / "summary.csv").open())}
    assert {row["status"] for row in rows.values()} == {"completed"}
    for job, optim in (("0", "sgd"), ("1", "adam")):
        ranks = rank_lines(sweep / job)
        assert sorted(ranks) == [0, 1], f"job {job}: a rank did not log its hparams"
        assert ranks[0] == ranks[1], f"job {job}: the ranks trained with different hparams"
        assert ranks[0][1]["optim"] == optim
        assert f"optim={optim}" in rows[job]["overrides"]
    assert rank_lines(sweep / "0")[0][0] != rank_lines(sweep / "1")[0][0]


def test_ranks_that_compose_different_configs_stop_with_the_differing_keys(cli):
    # the launching process has no LOCAL_RANK, the rank Lightning starts has LOCAL_RANK=1
    done = cli("trainer=ddp_cpu", "trainer.max_epochs=1", "seed=${oc.env:LOCAL_RANK,0}")
    assert done.returncode != 0
    assert "composed different configs (differing keys: data.seed, seed)" in done.stderr
    assert not (done.run_dir / "checkpoints").exists()


def test_a_global_batch_that_does_not_split_over_the_devices_is_refused_before_launch(cli):
    done = cli("trainer=ddp_cpu", "data.batch_size=63")
    assert done.returncode == 1
    assert "data.batch_size=63 is the global batch size" in done.stderr
    assert "use data.batch_size=62 or 64" in done.stderr
    assert not (done.run_dir / "train_rank1.log").exists() and not (done.run_dir / "checkpoints").exists()


def test_a_sweep_through_the_submitit_launcher_runs_each_job_in_its_own_process(tmp_path):
    """hydra-submitit-launcher's local executor: the same plugin path as SLURM, without sbatch."""
    sweep = tmp_path / "sweep"
    done = run_cli(
        [
            "-m",
            "hydra/launcher=submitit_local",
            "trainer=cpu",
            "trainer.max_epochs=1",
            "optim=sgd,adam",
            "test=false",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=tmp_path,
        run_dir=sweep,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert sorted(row["status"] for row in rows) == ["completed", "completed"]
    submitted = [path for path in (sweep / ".submitit").iterdir() if path.name.isdigit()]  # one per job
    assert len(submitted) == 2 and all(list(path.glob("*_result.pkl")) for path in submitted)
