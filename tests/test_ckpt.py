import functools
import subprocess
import sys

import pytest
import torch

from test_module import fit, make_module
from trainlab.ckpt import describe, load_checkpoint
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
