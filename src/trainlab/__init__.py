"""trainlab: configured, tracked image-classification experiments on PyTorch Lightning + Hydra."""

from trainlab.resolvers import register as _register_resolvers
from trainlab.schema import register as _register_schemas

__version__ = "0.1.0"

_register_resolvers()
_register_schemas()
