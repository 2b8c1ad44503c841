"""Optimizer requirements that torch only reports mid-training, checked before the first step."""

from __future__ import annotations

import torch
from torch import nn

from trainlab.errors import ConfigError


def sparse_parameter_names(model: nn.Module) -> set[str]:
    """Names of the parameters that receive sparse gradients (sparse Embedding / EmbeddingBag weights)."""
    names = set()
    for prefix, module in model.named_modules():
        if isinstance(module, nn.Embedding | nn.EmbeddingBag) and module.sparse:
            names.add(f"{prefix}.weight" if prefix else "weight")
    return names


def check_gradient_kinds(optimizer: torch.optim.Optimizer, model: nn.Module) -> None:
    """SparseAdam takes sparse gradients only; dense optimizers that cannot take sparse ones are named too."""
    sparse = sparse_parameter_names(model)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    if isinstance(optimizer, torch.optim.SparseAdam):
        dense = [name for name in trainable if name not in sparse]
        if dense:
            shown = ", ".join(dense[:4]) + (f" and {len(dense) - 4} more" if len(dense) > 4 else "")
            raise ConfigError(
                f"optim=sparse_adam needs sparse gradients for every parameter, but {shown} get dense ones. "
                "Use a model built from nn.EmbeddingBag(sparse=True), such as model=bag_of_pixels, or pick a "
                "dense optimizer (e.g. optim=adam)."
            )
    elif sparse & set(trainable) and not isinstance(optimizer, SPARSE_CAPABLE):
        raise ConfigError(
            f"{type(optimizer).__name__} cannot take the sparse gradients of {', '.join(sorted(sparse))}: "
            "use optim=sparse_adam, sgd or adagrad with this model."
        )


SPARSE_CAPABLE = (torch.optim.SparseAdam, torch.optim.SGD, torch.optim.Adagrad)
