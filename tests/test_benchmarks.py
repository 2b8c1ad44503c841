"""The benchmarks' --quick modes run and print their markdown tables (ratios measured in the same run)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def run_benchmark(name: str) -> str:
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / f"{name}.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def table_rows(output: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in output.splitlines()
        if line.startswith("|") and not line.startswith("|---")
    ]


def ratios(rows: list[list[str]]) -> list[float]:
    return [float(cell[:-1]) for row in rows for cell in row if re.fullmatch(r"\d+\.\d+x", cell)]


def test_data_benchmark_compares_trainlab_with_per_image_torchvision():
    output = run_benchmark("data")
    rows = table_rows(output)
    names = [row[0] for row in rows]
    assert "torchvision per-image, 0 workers" in names and "torchvision per-image, 2 workers" in names
    assert "trainlab `data=cifar10` (batched, 0 workers)" in names
    assert "`data=rmb data.pipeline=batched`" in names
    assert all(r > 0 for r in ratios(rows)) and ratios(rows)[0] == 1.0
    assert output.startswith("machine: ")


def test_options_benchmark_lists_every_option_against_fp32():
    rows = table_rows(run_benchmark("options"))
    options = {row[1] for row in rows[1:]}
    assert {"fp32", "channels_last", "bf16-mixed", "channels_last + bf16-mixed", "fused optimizer"} <= options
    assert all(row[3] == "1.00x" for row in rows[1:] if row[1] == "fp32")


def test_overhead_benchmark_times_both_loops_from_their_event_files():
    rows = table_rows(run_benchmark("overhead"))
    assert [row[0] for row in rows[1:]] == ["raw PyTorch loop (tutorial)", "`python -m trainlab` (defaults)"]
    steps_per_s = [float(row[1]) for row in rows[1:]]
    assert all(rate > 0 for rate in steps_per_s)
    assert rows[1][3] == "1.000x"
    # --quick is one round, so the median of per-round ratios is that round's ratio
    assert ratios(rows)[1] == pytest.approx(steps_per_s[1] / steps_per_s[0], rel=0.02)


def test_time_to_accuracy_runs_both_recipes_and_tabulates_their_epochs():
    output = run_benchmark("time_to_accuracy")
    rows = table_rows(output)
    recipes = [row[0] for row in rows[1:]]
    assert recipes == ["`experiment=cifar10_fast`", "`experiment=tutorial_cifar10`"]
    assert all(row[1] == "1" and 0 <= float(row[3]) <= 1 and float(row[2]) > 0 for row in rows[1:])
    assert "86% reached by cifar10_fast:" in output


def test_preflight_benchmark_times_the_file_check_against_pil_and_the_checks_within_start_up():
    rows = table_rows(run_benchmark("preflight"))
    assert [row[0] for row in rows] == [
        "check",
        "PIL Image.open (baseline)",
        "trainlab header check",
        "start-up",
        "first",
        "later",
    ]
    assert rows[1][3] == "1.0x" and ratios(rows[1:3])[1] > 0
    for row in rows[4:]:
        checks, total = float(row[1]), float(row[2])
        assert 0 < checks < total  # the run logged its checks' time, a part of the start-up


def test_watch_benchmark_compares_steps_per_second_with_and_without_the_callback():
    rows = table_rows(run_benchmark("watch"))
    assert [row[0] for row in rows[1:]] == [
        "callbacks=default (baseline)",
        "callbacks=watch",
        "callbacks=watch, histograms every 10 steps",
    ]
    values = ratios(rows)
    assert values[0] == 1.0 and all(v > 0 for v in values)


def test_muon_benchmark_times_its_step_against_adamw_and_both_newton_schulz_dtypes():
    rows = table_rows(run_benchmark("muon_step"))
    assert [row[0] for row in rows[1:]] == [
        "torch.optim.AdamW step",
        "optim=muon step (Newton-Schulz in float32, trainlab on a CPU)",
        "Newton-Schulz of the 4 hidden matrices in float32",
        "Newton-Schulz of the 4 hidden matrices in bfloat16",
        "forward + backward, batch 64",
    ]
    values = ratios(rows)
    assert values[0] == 1.0 and all(v > 0 for v in values)


def test_gpu_check_runs_every_path_it_can_on_this_machine_and_names_what_it_skipped():
    output = run_benchmark("gpu_check")
    rows = {(row[0], row[1]): row for row in table_rows(output)[1:]}
    checks = {check for check, _ in rows}
    assert checks == {"pipeline", "speed option", "NaN guard", "exact resume", "DDP", "time to accuracy"}
    ok = {key for key, row in rows.items() if row[2] == "ok"}
    # every check that needs no CUDA ran and passed; the exact-resume row compared the final checkpoints
    assert ("exact resume", "trainer.deterministic=true") in ok
    assert (
        "tensors and train/val loss and acc identical"
        in rows["exact resume", "trainer.deterministic=true"][3]
    )
    assert {("speed option", "fp32"), ("NaN guard", "nonfinite_loss=stop")} <= ok
    # what needs CUDA, or is measured on a CPU by another benchmark, is a row that says so
    assert rows["pipeline", "batched vs torchvision"][2] == "skipped"
    assert rows["speed option", "fp32"][3].endswith("1.00x fp32")
    assert rows["DDP", "trainer=ddp (all GPUs)"][2] == "skipped"
    assert rows["time to accuracy", "airbench94"][3] == "needs CUDA"
    assert output.rstrip().endswith("0 failed")
