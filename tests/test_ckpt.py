import functools
import shutil
import subprocess
import sys

import pytest
import torch

from modules import fit, make_module
from trainlab.checkpoints.io import load_checkpoint
from trainlab.ckpt import describe
from trainlab.errors import TrainlabError


@pytest.fixture(scope="module")
def adam_checkpoint(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ckpt")
    module = make_module()
    module.optimizer_factory = functools.partial(torch.optim.Adam, lr=0.01)
    module.param_group_specs = [{"name": "first", "params": r"^net\.0\."}]
    trainer = fit(module, tmp, epochs=1)
    trainer.save_checkpoint(tmp / "adam.ckpt")
    return tmp / "adam.ckpt"


def test_show_lists_groups_and_per_parameter_state(adam_checkpoint):
    text = describe(load_checkpoint(adam_checkpoint), adam_checkpoint)
    assert "after epoch 1, step 8" in text  # saved after the (first and only) epoch ended
    assert "group 'first': 2 params, lr=0.01" in text and "group 'default': 2 params" in text
    assert "exp_avg (16, 2)" in text and "exp_avg_sq (16, 2)" in text and "step = 8" in text


def test_show_command_prints_and_exits_zero(adam_checkpoint):
    done = subprocess.run(
        [sys.executable, "-m", "trainlab.ckpt", "show", str(adam_checkpoint)], capture_output=True, text=True
    )
    assert done.returncode == 0 and "optimizer 0:" in done.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "does not exist"), (b"", "is empty"), (b"PK\x03\x04truncated", "cannot be read")],
)
def test_bad_files_get_one_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.ckpt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(TrainlabError, match=message):
        load_checkpoint(path)
    done = subprocess.run(
        [sys.executable, "-m", "trainlab.ckpt", "show", str(path)], capture_output=True, text=True
    )
    assert done.returncode == 1 and done.stderr.startswith("error: ") and str(path) in done.stderr


def garbage_files(directory, good: bytes, count: int = 320):
    """Files a user may hand over as a checkpoint: random bytes, text, truncated or altered copies of a
    real checkpoint (a zip), zips and pickles of other things, torch saves of other objects."""
    import io
    import pickle
    import random
    import zipfile

    rng = random.Random(0)
    makers = [
        lambda: rng.randbytes(rng.randint(1, 4000)),
        lambda: "".join(rng.choice("abc {}[]:\n") for _ in range(rng.randint(1, 500))).encode(),
        lambda: good[: rng.randint(1, len(good) - 1)],
        lambda: bytes(b ^ 0xFF if rng.random() < 0.01 else b for b in good),
        lambda: pickle.dumps(rng.choice([[1, 2], {"a": 1}, "text", 3.5, {"state_dict": 3}])),
        lambda: _zip_of(zipfile, io, rng.randbytes(200)),
        lambda: _torch_save(io, rng.choice([torch.zeros(3), [torch.ones(2)], {"epoch": 1}, "x"])),
        lambda: good[:1000] + rng.randbytes(1000) + good[2000:],
    ]
    for i in range(count):
        path = directory / f"garbage{i:03d}.ckpt"
        path.write_bytes(makers[i % len(makers)]())
        yield path


def _zip_of(zipfile, io, content: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", content)
    return buffer.getvalue()


def _torch_save(io, obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def test_any_file_given_as_a_checkpoint_is_a_named_error_and_last_steps_back_past_it(
    adam_checkpoint, tmp_path
):
    from trainlab.checkpoints.resume import newest_readable

    good = adam_checkpoint.read_bytes()
    unnamed = []
    for path in garbage_files(tmp_path, good):
        try:
            load_checkpoint(path)
        except TrainlabError as err:
            if str(path) not in str(err):
                unnamed.append((path.name, str(err)))
            continue
        unnamed.append((path.name, "loaded"))  # an altered byte may leave a zip that still loads
    loaded = [name for name, why in unnamed if why == "loaded"]
    assert [u for u in unnamed if u[1] != "loaded"] == [] and len(loaded) < 5, unnamed
    # ckpt_path=last: a garbage last.ckpt beside an older good checkpoint steps back to the good one
    checkpoints = tmp_path / "run" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "epoch001-val_acc0.5000.ckpt").write_bytes(good)
    for path in list(garbage_files(tmp_path, good, count=16)):
        shutil.copy(path, checkpoints / "last.ckpt")
        found, _ = newest_readable(checkpoints)
        assert found == checkpoints / "epoch001-val_acc0.5000.ckpt", path.name
