"""Where a network's input and output layers are, found from its modules rather than from names.

Optimizers that treat hidden layers differently (Muon) and fine-tuning recipes that replace or train a
head first need them, for trainlab's networks and for ones from timm or torchvision alike.
"""

from __future__ import annotations

from torch import nn

EMBEDDINGS = (nn.Embedding, nn.EmbeddingBag)


def output_layer(net: nn.Module) -> nn.Module | None:
    """The layer that produces the class scores: timm's `get_classifier()` where the network has it,
    else the last `nn.Linear` registered (torchvision's `fc` / `classifier[-1]` / `heads.head`, trainlab's
    nets); None if the network has no Linear layer (e.g. a bag of embeddings)."""
    get_classifier = getattr(net, "get_classifier", None)
    if callable(get_classifier):
        layer = get_classifier()
        if isinstance(layer, nn.Module) and any(True for _ in layer.parameters()):
            return layer
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def input_and_output_parameters(net: nn.Module) -> list[nn.Parameter]:
    """Parameters of the output layer and of embedding tables: matrices that are not hidden layers."""
    layers = [m for m in net.modules() if isinstance(m, EMBEDDINGS)]
    head = output_layer(net)
    if head is not None:
        layers.append(head)
    return [p for layer in layers for p in layer.parameters()]
