"""Optimizer-side helpers torch lacks: parameter groups and the checks a run makes before training."""
