"""Hydra config tree shipped with the package (conf/ at the repository root links here)."""
