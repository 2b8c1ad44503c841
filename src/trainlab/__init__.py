"""trainlab: configured, tracked image-classification experiments on PyTorch Lightning + Hydra."""

from trainlab.resolvers import register as _register_resolvers

__version__ = "0.1.0"

_register_resolvers()
