"""Preflight: every mistake in a run's config found before the first training step.

`commandline` explains what Hydra refuses while it composes the config (a misspelled key or option, a
run dir it cannot create); `config` checks the composed config against what the run will read and do;
`rehearsal` runs the real model, loss and data once on one batch of each split.
"""
