"""trainlab: configured, tracked image-classification experiments on PyTorch Lightning + Hydra."""

__version__ = "0.1.0"
