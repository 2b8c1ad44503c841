"""trainlab: configured, tracked image-classification experiments on PyTorch Lightning + Hydra."""

from trainlab.core.resolvers import register as _register_resolvers
from trainlab.core.schema import register as _register_schemas

__version__ = "0.1.0"

_register_resolvers()
_register_schemas()
