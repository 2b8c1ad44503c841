"""Muon for the hidden weight matrices and AdamW for everything else, as one torch optimizer.

Muon (Jordan et al., 2024, https://kellerjordan.github.io/posts/muon/) replaces each momentum update of
a weight matrix by its nearest semi-orthogonal matrix (a few Newton-Schulz iterations), so every
direction of the matrix moves at the same rate. It is defined for the 2-D weights of hidden layers only:
embeddings, the output layer, biases and normalization gains keep an element-wise rule. torch ships the
Muon step (`torch.optim.Muon`, which takes 2-D parameters only); this class applies it to every hidden
matrix, conv kernels included (an (out, in, kh, kw) kernel viewed as an (out, in*kh*kw) matrix, as in
the CIFAR-10 speed records), and torch's AdamW step to the rest, in one optimizer, so Lightning,
schedulers, checkpoints and exact resume see a single optimizer with ordinary param groups and state.

With `adjust_lr_fn="match_rms_adamw"` (the default; Liu et al., 2025, "Muon is Scalable for LLM
Training", https://arxiv.org/abs/2502.16982) each Muon update is scaled to the RMS of a typical AdamW
update (0.2 * sqrt(max(rows, cols))), so both rules share one lr, one weight decay and one scheduler.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.optim.adamw import adamw

MUON = "use_muon"
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)  # torch.optim.Muon's quintic (Jordan et al., 2024)
NS_EPS = 1e-7
LR_RATIOS = {
    "original": lambda rows, cols: math.sqrt(max(1.0, rows / cols)),
    "match_rms_adamw": lambda rows, cols: 0.2 * math.sqrt(max(rows, cols)),
    "spectral_unclamped": lambda rows, cols: math.sqrt(rows / cols),
}


def orthogonalize(matrix: Tensor, steps: int = 5, dtype: torch.dtype = torch.bfloat16) -> Tensor:
    """The nearest semi-orthogonal matrix to `matrix` (rows, cols), approximately: `steps` quintic
    Newton-Schulz iterations with torch.optim.Muon's coefficients, computed in `dtype`. Returns a
    (rows, cols) tensor in `dtype` whose singular values lie roughly in [0.5, 1.5] (the quintic trades
    exactness for speed; Jordan et al. found it does not hurt training)."""
    x = matrix.to(dtype)
    tall = x.size(0) > x.size(1)
    if tall:
        x = x.T
    x = x / x.norm().clamp(min=NS_EPS)
    a, b, c = NS_COEFFICIENTS
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if tall else x


def newton_schulz_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 (torch.optim.Muon's) on accelerators; float32 on a CPU, where torch's bfloat16 matmuls
    cost about 20x float32 (benchmarks/muon_step.py)."""
    return torch.float32 if device.type == "cpu" else torch.bfloat16


class MuonWithAdamW(torch.optim.Optimizer):
    """Muon on hidden matrices (ndim >= 2), AdamW on the rest; one lr and weight decay for both.

    Args:
        params: parameters or param-group dicts. A group may say `use_muon: true|false`; a group that
            does not is split in two: its matrices (ndim >= 2) take Muon, the rest (biases, norms) take
            AdamW in a group named "<name>_adamw". `split_param_groups` (which the training module
            calls) moves the output layer and embeddings to the AdamW side.
        lr: learning rate of both rules (Muon's scaled by `adjust_lr_fn`).
        weight_decay: decoupled weight decay of both rules (multiplied by lr, as in AdamW).
        momentum: Muon's momentum (0.95 in the papers).
        nesterov: Muon's Nesterov momentum.
        ns_steps: Newton-Schulz iterations of the orthogonalization (5 in the papers).
        adjust_lr_fn: how Muon scales lr per matrix shape: "match_rms_adamw" (0.2 * sqrt(max(A, B))),
            "original" (sqrt(max(1, A / B))) or "spectral_unclamped"; see `torch.optim.Muon`.
        betas: AdamW's coefficients of the running averages of the gradient and its square.
        eps: AdamW's term added to the denominator.

    Raises:
        ValueError: a `use_muon: true` group holds a parameter with fewer than 2 dimensions.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_steps: int = 5,
        adjust_lr_fn: str = "match_rms_adamw",
        betas: tuple[float, float] = (0.9, 0.95),
        eps: float = 1e-8,
    ) -> None:
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"Invalid beta parameters: {betas}")
        if adjust_lr_fn not in LR_RATIOS:
            raise ValueError(f"adjust_lr_fn={adjust_lr_fn!r}: use one of {', '.join(LR_RATIOS)}")
        groups = list(params)
        if groups and not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        defaults = {
            "lr": lr,
            "weight_decay": weight_decay,
            "momentum": momentum,
            "nesterov": nesterov,
            "ns_steps": ns_steps,
            "adjust_lr_fn": adjust_lr_fn,
            "betas": tuple(betas),
            "eps": eps,
        }
        super().__init__(self.split_param_groups(groups), defaults)
        for group in self.param_groups:
            for p in group["params"] if group[MUON] is True else ():
                if p.ndim < 2:
                    raise ValueError(f"Muon takes matrices; group {group.get('name')} has {tuple(p.shape)}")

    @staticmethod
    def split_param_groups(
        groups: Sequence[Mapping[str, Any]], adamw_params: Collection[Tensor] = ()
    ) -> list[dict[str, Any]]:
        """Groups with `use_muon` set: each group without it becomes a Muon group of its hidden matrices
        (ndim >= 2, not in `adamw_params`) and an AdamW group "<name>_adamw" of the rest; empty halves
        are left out. Groups that set `use_muon` are kept as they are."""
        keep_out = {id(p) for p in adamw_params}
        split: list[dict[str, Any]] = []
        for group in groups:
            if MUON in group:
                split.append(dict(group))
                continue
            params = list(group["params"])
            name = group.get("name", "default")
            hidden = [p for p in params if p.ndim >= 2 and id(p) not in keep_out]
            rest = [p for p in params if p.ndim < 2 or id(p) in keep_out]
            if hidden:
                split.append({**group, "params": hidden, MUON: True})
            if rest:  # a group that is all one kind keeps its name (it names the lr/<group> curves)
                named = {"name": f"{name}_adamw"} if hidden else {}
                split.append({**group, **named, "params": rest, MUON: False})
        return split

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            rule = group[MUON]
            if rule is None:  # a group added during training: each parameter by its shape
                self._muon(group, [p for p in group["params"] if p.ndim >= 2])
                self._adamw(group, [p for p in group["params"] if p.ndim < 2])
            else:
                (self._muon if rule else self._adamw)(group, group["params"])
        return loss

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """torch's, for a group added during training (e.g. a fine-tuned backbone joining the optimizer):
        without `use_muon` it stays one group (one lr/<group> curve, one scheduler entry) whose matrices
        take Muon and the rest AdamW."""
        param_group.setdefault(MUON, None)
        super().add_param_group(param_group)

    def _muon(self, group: dict[str, Any], params: list[Tensor]) -> None:
        for p in params:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError("Muon does not take sparse gradients")
            # the momentum buffer is kept as the (out, in*kh*kw) matrix in logical order, so a kernel
            # in channels_last memory and a checkpoint loaded into contiguous memory agree
            rows = p.shape[0]
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros(rows, p[0].numel(), dtype=p.dtype, device=p.device)
            grad, buf = p.grad.reshape(rows, -1), state["momentum_buffer"]
            buf.lerp_(grad, 1 - group["momentum"])
            update = grad.lerp(buf, group["momentum"]) if group["nesterov"] else buf
            update = orthogonalize(update, group["ns_steps"], newton_schulz_dtype(p.device))
            lr = group["lr"] * LR_RATIOS[group["adjust_lr_fn"]](rows, buf.shape[1])
            p.mul_(1 - group["lr"] * group["weight_decay"])
            p.add_(update.reshape(p.shape).to(p.dtype), alpha=-lr)

    def _adamw(self, group: dict[str, Any], group_params: list[Tensor]) -> None:
        params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
        for p in group_params:
            if p.grad is None:
                continue
            state = self.state[p]
            if not state:
                state["step"] = torch.tensor(0.0, dtype=torch.float32)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            params.append(p)
            grads.append(p.grad)
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            steps.append(state["step"])
        if not params:
            return
        beta1, beta2 = group["betas"]
        adamw(
            params,
            grads,
            exp_avgs,
            exp_avg_sqs,
            [],
            steps,
            amsgrad=False,
            beta1=beta1,
            beta2=beta2,
            lr=group["lr"],
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=False,
        )
