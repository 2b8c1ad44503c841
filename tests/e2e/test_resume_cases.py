"""Resume cases beyond the scheduler matrix, through the real CLI: EMA weights, backbone fine-tuning
groups, two param groups and loader workers stopped mid-epoch (tests/conf/resume_case/*.yaml, swept in
one process); a finished run resumed; a new run dir started from another run's checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_resume import assert_identical
from test_resume_matrix import TINY, last_ckpt, metrics

from conftest import run_cli
from faults import fault, fault_env

pytestmark = pytest.mark.slow

CASES_DIR = Path(__file__).resolve().parents[1] / "conf"
CASES = sorted(p.stem for p in (CASES_DIR / "resume_case").glob("*.yaml"))
SWEEP = [
    f"hydra.searchpath=[file://{CASES_DIR}]",
    f"+resume_case={','.join(CASES)}",
    "trainer.max_epochs=3",
    *(o for o in TINY if not o.startswith("hydra.sweep.subdir")),
    "hydra.sweep.subdir=${hydra.runtime.choices.resume_case}",
]
# last.ckpt every 3 steps; the run dies after step 7, so it resumes from step 6 (batch 2 of epoch 2)
MID_EPOCH_STOP = [
    "callbacks.last_checkpoint.every_n_train_steps=3",
    "callbacks.last_checkpoint.every_n_epochs=null",
]


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    root = tmp_path_factory.mktemp("cases")

    def sweep(sweep_dir: Path, *overrides: str):
        return run_cli(["-m", f"hydra.sweep.dir={sweep_dir}", *SWEEP, *overrides], cwd=root, env=fault_env())

    sweep(root / "straight").check()
    assert sweep(root / "stopped", *MID_EPOCH_STOP, fault("CrashAtStep", step=7)).returncode != 0
    stopped = {case: last_ckpt(root / "stopped" / case) for case in CASES}
    sweep(root / "stopped", *MID_EPOCH_STOP, "ckpt_path=last").check()
    return root, stopped


@pytest.mark.parametrize("case", CASES)
def test_a_mid_epoch_resume_of_each_case_ends_exactly_like_the_uninterrupted_run(cases, case):
    root, stopped = cases
    assert stopped[case]["global_step"] == 6
    straight, resumed = root / "straight" / case, root / "stopped" / case
    assert metrics(resumed) == metrics(straight)
    a, b = last_ckpt(straight), last_ckpt(resumed)
    assert "in epoch 2 after 2 batches, step 6)" in (resumed / "train.log").read_text()  # resumed there
    for key in ("state_dict", "optimizer_states", "lr_schedulers", "trainlab_history", "callbacks"):
        if key == "callbacks":  # only the states that are not checkpoint bookkeeping (paths differ)
            a[key] = {k: v for k, v in a[key].items() if not k.startswith("ModelCheckpoint")}
            b[key] = {k: v for k, v in b[key].items() if not k.startswith("ModelCheckpoint")}
        assert_identical(a[key], b[key], key)
    if case == "finetune":  # the backbone group and its Adam state came back and kept training
        groups = b["optimizer_states"][0]["param_groups"]
        assert [g["name"] for g in groups] == ["default", "backbone"]
        steps = {int(s["step"]) for s in b["optimizer_states"][0]["state"].values()}
        assert steps == {12, 8}  # head: all 12 steps; backbone: the 8 since it joined at step 4


def single_run(root: Path, run_dir: Path, *overrides: str):
    tiny = [o for o in TINY if not o.startswith("hydra.sweep")]
    case = ["+resume_case=workers", f"hydra.searchpath=[file://{CASES_DIR}]"]
    return run_cli([*tiny, *case, *overrides], cwd=root, run_dir=run_dir, env=fault_env())


def test_a_finished_run_resumed_says_so_and_leaves_its_files_alone(cases):
    root, _ = cases
    run_dir = root / "straight" / "workers"
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and ".hydra" not in p.parts}
    again = single_run(root, run_dir, "trainer.max_epochs=3", "ckpt_path=last").check()
    assert "nothing left to train" in again.stdout and "trainer.max_epochs=3" in again.stdout
    assert "after epoch 3, step 12" in again.stdout and "status: completed" in again.stdout
    after = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and ".hydra" not in p.parts}
    changed = sorted(str(p.relative_to(run_dir)) for p in after if before.get(p) != after[p])
    # at most the log grew and the run-dir lock names its latest holder; no run file was touched
    assert set(changed) <= {"train.log", ".trainlab.lock"}, changed


def test_a_new_run_dir_from_another_runs_checkpoint_refers_to_none_of_its_files(cases, tmp_path):
    root, _ = cases
    other = root / "straight" / "workers"
    new = single_run(
        root, tmp_path / "new", "trainer.max_epochs=4", f"ckpt_path={other / 'checkpoints' / 'last.ckpt'}"
    ).check()
    log = (new.run_dir / "train.log").read_text()
    assert f"starting a new run in {new.run_dir} from {other}" in log
    assert f"Restoring states from the checkpoint path at {new.run_dir / 'checkpoints'}" in log  # the test
    values = metrics(new.run_dir)  # asserts best_ckpt and last_ckpt lie in the new run dir
    assert values["epochs"] == 4 and values["best_ckpt"].startswith("epoch004-")  # its only epoch
    # val/acc_best continues the run's history; best_ckpt is the best file this dir holds
    source_best = last_ckpt(other)["trainlab_val_acc_best"]
    assert values["val/acc_best"] == pytest.approx(max(source_best, values["val/acc"]))
    # provenance.json and the config stored in checkpoints record ckpt_path, where the run started; the
    # run's own records and the checkpoint bookkeeping name no file of the other dir
    for path in [new.run_dir / "metrics.json", new.run_dir / "status.json"]:
        assert str(other) not in path.read_text(), path
    state = last_ckpt(new.run_dir)
    assert str(other) not in repr(state["callbacks"]) + repr(state["loops"])
