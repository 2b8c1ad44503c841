"""trainlab's StochasticWeightAveraging takes the learning rates a config gives (ints, ListConfig)."""

from __future__ import annotations

from omegaconf import OmegaConf

from trainlab.callbacks.swa import StochasticWeightAveraging


def test_swa_lrs_from_a_config_reach_lightning_as_floats():
    assert StochasticWeightAveraging(swa_lrs=1)._swa_lrs == 1.0
    lrs = StochasticWeightAveraging(swa_lrs=OmegaConf.create([1, 0.5]), swa_epoch_start=2)._swa_lrs
    assert lrs == [1.0, 0.5] and all(isinstance(v, float) for v in lrs)
