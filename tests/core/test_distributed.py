"""trainlab.core.distributed: the loss scale that makes DDP train like one process, and the config check."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from trainlab.core.distributed import _differing_keys, _quoted, loss_scale_for_global_mean
from trainlab.records.catalog import flatten


def fake_trainer(world_size: int) -> SimpleNamespace:
    def reduce(tensor: torch.Tensor, reduce_op: str) -> torch.Tensor:
        assert reduce_op == "sum"
        dist.all_reduce(tensor)
        return tensor

    return SimpleNamespace(
        world_size=world_size, strategy=SimpleNamespace(root_device=torch.device("cpu"), reduce=reduce)
    )


def data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(31, 5, generator=generator), torch.randint(0, 3, (31,), generator=generator)


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(5, 3)


def rank_gradients(rank: int, init_file: str, out: dict) -> None:
    """On each of 2 ranks: the gradient for every (reduction, scaled) case, under DDP."""
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    x, y = data()
    x, y = x[rank::2], y[rank::2]  # 16 and 15 samples: the uneven last batch of an epoch
    for reduction in ("mean", "sum"):
        for scaled in (True, False):
            net = DistributedDataParallel(model())
            loss = nn.functional.cross_entropy(net(x), y, reduction=reduction)
            if scaled:
                loss = loss * loss_scale_for_global_mean(fake_trainer(2), len(y), reduction)
            loss.backward()
            if rank == 0:
                out[reduction, scaled] = net.module.weight.grad.clone()
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp_gradients(tmp_path_factory) -> dict:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = mp.Manager().dict()
    init_file = tmp_path_factory.mktemp("gloo") / "init"
    mp.spawn(rank_gradients, args=(str(init_file), out), nprocs=2, join=True)
    return dict(out)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_scaled_ddp_gradients_of_an_uneven_batch_equal_the_single_process_gradient(ddp_gradients, reduction):
    x, y = data()
    net = model()
    nn.functional.cross_entropy(net(x), y, reduction=reduction).backward()
    single = net.weight.grad
    assert torch.allclose(ddp_gradients[reduction, True], single, atol=1e-6)
    assert not torch.allclose(ddp_gradients[reduction, False], single, atol=1e-4)


def test_one_process_needs_no_scale():
    assert loss_scale_for_global_mean(SimpleNamespace(world_size=1), 7, "mean") == 1.0


def test_differing_keys_name_the_leaves_that_differ():
    a = dict(flatten({"seed": 0, "optim": {"lr": 0.1, "betas": [0.9, 0.99]}, "data": {"root": "x"}}))
    b = dict(flatten({"seed": 1, "optim": {"lr": 0.1, "betas": [0.9, 0.98]}, "data": {"root": "x"}}))
    assert _differing_keys([a, b]) == ["optim.betas", "seed"]
    assert _differing_keys([a, dict(a)]) == []


def test_quoted_run_dirs_stay_one_hydra_value():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    paths = (
        "/tmp/runs/a b",
        "/tmp/it's=here",
        "/tmp/back\\slash",
        "/tmp/end\\",
        "/x\\'y",
        "/tmp/2026-11-25/10-00-00/0",
    )
    for path in paths:
        override = parser.parse_override(f"hydra.run.dir={_quoted(path)}")
        assert override.value() == path


def test_a_child_rank_runs_exactly_the_current_job_in_its_dir(tmp_path):
    """Not the sweep's command line: the job's own overrides, single-run mode, the job's dir and log name."""
    from hydra import compose, initialize_config_module
    from hydra.conf import ConfigSourceInfo
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from trainlab.core.distributed import job_command

    with initialize_config_module(config_module="trainlab.conf", version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "optim=adam",
                "optim.lr=0.003",
                "trainer=ddp_cpu",
                "hydra.mode=MULTIRUN",
                "hydra.run.dir=/old",
            ],
            return_hydra_config=True,
        )
    job_dir = tmp_path / "sweep dir" / "3"
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(job_dir)
        cfg.hydra.runtime.config_sources.append(
            ConfigSourceInfo(path="/my/conf", schema="file", provider="command-line")
        )
    HydraConfig.instance().set_config(cfg)
    try:
        command, cwd = job_command(local_rank=1)
    finally:
        HydraConfig.instance().cfg = None
    assert command[1:3] == ["-m", "trainlab"] and cwd == cfg.hydra.runtime.cwd
    assert command[3:7] == ["--config-dir", "/my/conf", "--config-name", "train"]
    assert command[7:] == [
        "optim=adam",
        "optim.lr=0.003",
        "trainer=ddp_cpu",
        f"hydra.run.dir='{job_dir}'",
        "hydra.job.name=train_rank1",
        "hydra.output_subdir=null",
    ], "hydra.mode and the old run dir must not reach the child"
