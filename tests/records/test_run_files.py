import json
import math
from importlib import metadata

import pytest
import torch

from trainlab.atomic import atomic_open, atomic_write_csv, atomic_write_text
from trainlab.checkpoints.io import AtomicCheckpointIO, CheckpointWriteError
from trainlab.records.files import epoch_summary, git_state, provenance, to_number, write_json


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "f.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_open(target, "w") as handle:
        handle.write("half of the new cont")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]  # the temporary file is gone too


def test_atomic_write_csv_writes_a_header_then_newline_ended_rows(tmp_path):
    target = tmp_path / "t.csv"
    atomic_write_csv(target, [{"b": "x,y", "a": None}, {"b": 'say "hi"\nthere', "a": 0.25}])
    assert target.read_bytes() == b'b,a\n"x,y",\n"say ""hi""\nthere",0.25\n'  # columns in the rows' order
    atomic_write_csv(target, [{"b": 1, "a": 2}], fieldnames=["a", "b"])
    assert target.read_text() == "a,b\n2,1\n"
    atomic_write_csv(target, [], fieldnames=["a", "b"])
    assert target.read_text() == "a,b\n"
    with pytest.raises(ValueError, match="pass fieldnames"):
        atomic_write_csv(target, [])
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]


def test_checkpoint_io_saves_loadable_files_without_leftovers(tmp_path):
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "epoch": 2}, tmp_path / "ckpt" / "last.ckpt")
    loaded = io.load_checkpoint(tmp_path / "ckpt" / "last.ckpt")
    assert loaded["epoch"] == 2 and torch.equal(loaded["state_dict"]["w"], torch.ones(3))
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == ["last.ckpt"]


def test_checkpoint_io_keeps_the_previous_file_when_saving_fails(tmp_path):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"epoch": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise OSError("No space left on device")

    with pytest.raises(CheckpointWriteError, match=r"Could not write checkpoint .*last\.ckpt: No space"):
        io.save_checkpoint({"epoch": 2, "bad": Unpicklable()}, path)
    assert io.load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_to_number_makes_json_numbers():
    assert to_number(torch.tensor(0.5)) == 0.5 and to_number(3) == 3 and to_number(None) is None
    assert to_number(float("nan")) is None and to_number(torch.tensor(math.inf)) is None


def test_write_json_is_valid_json(tmp_path):
    write_json(tmp_path / "m.json", {"val/acc": 0.9})
    assert json.loads((tmp_path / "m.json").read_text()) == {"val/acc": 0.9}


def test_epoch_summary_groups_train_val_and_lr():
    line = epoch_summary(
        2, 10, {"train/loss": torch.tensor(0.25), "val/acc": 0.9, "lr/default": 0.001, "train/loss_step": 1.0}
    )
    assert line == "epoch 3/10 | train/loss 0.25 | val/acc 0.9 | lr/default 0.001"


def test_provenance_records_versions_seed_and_git(tmp_path):
    record = provenance(7, tmp_path)
    assert record["seed"] == 7 and record["packages"]["torch"] == metadata.version("torch")
    assert record["packages"]["lightning"] == metadata.version("lightning")
    assert git_state(tmp_path) == {"commit": None, "dirty": None}


def test_the_tensorboard_hint_names_this_environments_program_and_quotes_the_dir():
    import shlex
    import sys
    from pathlib import Path

    from trainlab.records.files import tensorboard_command

    program, flag, logdir = shlex.split(tensorboard_command(Path("/runs/a b")))
    assert program == str(Path(sys.executable).parent / "tensorboard") and Path(program).is_file()
    assert (flag, logdir) == ("--logdir", "/runs/a b")
