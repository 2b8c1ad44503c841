"""Stochastic Weight Averaging (Izmailov et al., 2018, https://arxiv.org/abs/1803.05407) through
Lightning's `StochasticWeightAveraging`, made to resume exactly mid-epoch.

From epoch `swa_epoch_start` on, Lightning swaps the run's scheduler for torch's `SWALR` (annealing each
group's lr to `swa_lrs` over `annealing_epochs`) and adds the weights to an equal average at the start
of every epoch; after the last epoch the average replaces the weights. A network with BatchNorm then
gets one more epoch of forward passes over the training data, without updates, that recomputes the
BatchNorm statistics for the averaged weights (the paper's `update_bn`); its validation scores the
SWA model. The average, the SWALR state and the count travel in checkpoints (Lightning's state_dict).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning.pytorch as L
from lightning.pytorch.callbacks import StochasticWeightAveraging as LightningSWA

from trainlab.compat import resumed_epoch_in_progress


class StochasticWeightAveraging(LightningSWA):
    """Lightning's callback (same arguments), plus the epoch-start work a mid-epoch resume skips.

    `swa_lrs` may be an int or a list from a config (Lightning takes only a float or a Python list of
    floats): `swa_lrs=1` and `swa_lrs=[0.01,0.001]` on the command line mean what they say.
    """

    def __init__(self, swa_lrs: float | Sequence[float], **kwargs: Any) -> None:
        lrs = [float(v) for v in swa_lrs] if isinstance(swa_lrs, Sequence) else float(swa_lrs)
        super().__init__(swa_lrs=lrs, **kwargs)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A run resumed mid-epoch gets no on_train_epoch_start for that epoch, where Lightning re-creates
        # SWALR from the checkpoint's state (on_fit_start cleared the stock scheduler): without it no
        # scheduler would step at this epoch's end. The loops' progress is restored by now (it is not
        # yet at on_fit_start); the average's update for this epoch is not repeated (its
        # latest_update_epoch is restored).
        if resumed_epoch_in_progress(trainer) and self._scheduler_state is not None:
            self.on_train_epoch_start(trainer, pl_module)
