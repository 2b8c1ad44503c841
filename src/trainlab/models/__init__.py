"""Networks chosen by `model=<name>`; each takes num_classes and in_channels (from the data config)."""
