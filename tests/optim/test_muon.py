"""MuonWithAdamW: torch's Muon step on hidden matrices (conv kernels as matrices), AdamW on the rest."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from trainlab.models.layers import input_and_output_parameters, output_layer
from trainlab.optim import muon
from trainlab.optim.muon import MuonWithAdamW, orthogonalize

HYPER = {"lr": 0.01, "weight_decay": 0.1}


def net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8 * 4 * 4, 16), nn.Linear(16, 5)
    )


def backward(model: nn.Module, seed: int = 1) -> None:
    torch.manual_seed(seed)
    model(torch.randn(4, 3, 6, 6)).square().mean().backward()


def test_groups_split_into_hidden_matrices_and_the_rest_with_the_output_layer_on_adamw():
    model = net()
    groups = MuonWithAdamW.split_param_groups(
        [{"name": "default", "params": list(model.parameters())}], input_and_output_parameters(model)
    )
    assert output_layer(model) is model[4]
    by_name = {g["name"]: g for g in groups}
    assert set(by_name) == {"default", "default_adamw"}
    assert by_name["default"]["use_muon"] and not by_name["default_adamw"]["use_muon"]
    assert [tuple(p.shape) for p in by_name["default"]["params"]] == [(8, 3, 3, 3), (16, 128)]
    assert {id(p) for p in by_name["default_adamw"]["params"]} >= {id(model[4].weight), id(model[0].bias)}


@pytest.mark.parametrize("channels_last", [False, True])
def test_each_step_is_torchs_muon_on_the_matrix_view_and_torchs_adamw_elsewhere(monkeypatch, channels_last):
    monkeypatch.setattr(muon, "newton_schulz_dtype", lambda device: torch.bfloat16)  # torch's, to compare
    model = net()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    ref = copy.deepcopy(model)
    ours = MuonWithAdamW(
        MuonWithAdamW.split_param_groups([{"params": list(model.parameters())}], list(model[4].parameters())),
        **HYPER,
    )
    # the reference: torch.optim.Muon on 2-D copies of the hidden matrices, torch.optim.AdamW on the rest
    hidden = [ref[0].weight, ref[3].weight]
    shadows = [nn.Parameter(p.detach().reshape(p.shape[0], -1).clone()) for p in hidden]
    reference = torch.optim.Muon(shadows, **HYPER, adjust_lr_fn="match_rms_adamw", nesterov=True)
    rest = [p for p in ref.parameters() if all(p is not h for h in hidden)]
    adamw = torch.optim.AdamW(rest, **HYPER, betas=(0.9, 0.95), eps=1e-8)
    for step in range(3):
        for m in (model, ref):
            m.zero_grad()
            backward(m, seed=step)
        for shadow, p in zip(shadows, hidden, strict=True):
            shadow.grad = p.grad.reshape(p.shape[0], -1)
        ours.step()
        reference.step()
        adamw.step()
        with torch.no_grad():
            for shadow, p in zip(shadows, hidden, strict=True):
                p.copy_(shadow.view(p.shape))
    for (name, a), b in zip(model.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert not torch.equal(model[0].weight, net()[0].weight)  # it moved


def test_state_round_trips_through_a_state_dict_and_steps_identically():
    model, twin = net(), net()
    first = MuonWithAdamW(MuonWithAdamW.split_param_groups([{"params": list(model.parameters())}]), **HYPER)
    backward(model)
    first.step()
    twin.load_state_dict(model.state_dict())
    second = MuonWithAdamW(MuonWithAdamW.split_param_groups([{"params": list(twin.parameters())}]), **HYPER)
    second.load_state_dict(copy.deepcopy(first.state_dict()))
    for m, opt in ((model, first), (twin, second)):
        m.zero_grad()
        backward(m, seed=2)
        opt.step()
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_vector_in_a_muon_group_is_refused():
    with pytest.raises(ValueError, match="Muon takes matrices"):
        MuonWithAdamW([{"params": [nn.Parameter(torch.zeros(3))], "use_muon": True}])


def test_float32_newton_schulz_is_close_to_bfloat16_and_nearly_orthogonal():
    torch.manual_seed(0)
    matrix = torch.randn(16, 72)
    fp32, bf16 = orthogonalize(matrix, 5, torch.float32), orthogonalize(matrix, 5, torch.bfloat16)
    assert fp32.dtype == torch.float32 and fp32.shape == (16, 72)
    torch.testing.assert_close(fp32, bf16.float(), atol=0.02, rtol=0.05)
    singular = torch.linalg.svdvals(fp32)
    assert singular.min() > 0.5 and singular.max() < 1.5  # the quintic's band, not exactly 1
    assert muon.newton_schulz_dtype(torch.device("cpu")) == torch.float32


def test_a_group_added_during_training_stays_one_group_with_each_parameter_by_its_shape():
    """A fine-tuned backbone joins through add_param_group (Lightning's BaseFinetuning): one group,
    one lr, its kernels on Muon and its biases on AdamW."""
    model = net()
    optimizer = MuonWithAdamW([{"params": list(model[3:].parameters())}], **HYPER)
    optimizer.add_param_group({"params": list(model[:2].parameters()), "lr": 0.001, "name": "backbone"})
    assert [g.get("name") for g in optimizer.param_groups][-1] == "backbone"
    assert optimizer.param_groups[-1]["use_muon"] is None
    before = model[0].weight.detach().clone()
    backward(model)
    optimizer.step()
    assert set(optimizer.state[model[0].weight]) == {"momentum_buffer"}
    assert set(optimizer.state[model[0].bias]) == {"step", "exp_avg", "exp_avg_sq"}
    assert not torch.equal(model[0].weight, before)
