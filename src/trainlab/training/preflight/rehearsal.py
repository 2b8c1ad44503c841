"""One real step before training: the run's own data, network and loss on one batch of each split.

A training step (forward, loss, backward) and an evaluation step run on a copy of the module, on the
training device and at the run's precision, so a shape, dtype, channel, target-form or normalization
mismatch stops the run before anything trains, with the config keys that fix it. The copy's gradients
and statistics are thrown away and the random generators are restored: the run then trains exactly as
it would have without this step.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
from omegaconf import OmegaConf

import trainlab.conf
from trainlab.core.build import chosen_option, where_defined
from trainlab.core.module import ClassifierModule
from trainlab.core.rng import capture_rng_state, restore_rng_state
from trainlab.data.base import ImageDataModule
from trainlab.errors import ConfigError, TrainlabError

log = logging.getLogger("trainlab.training.preflight")

SPLITS = ("train", "val", "test")
# torch broadcasts a target of another size than the input with this warning: a wrong target form
BROADCAST_WARNING = r".*target size .* different to the input size.*"


def rehearse(module: ClassifierModule, datamodule: ImageDataModule, trainer: L.Trainer) -> None:
    """Run one training and one evaluation step of a copy of `module`; raise a ConfigError naming the
    keys involved when any part does not fit, warn once for a legal but unusual loss input form."""
    advice = getattr(module.loss, "input_advice", lambda: None)()
    if advice:
        log.warning("%s (%s)", advice, where_defined("loss"))
    with preserved_rng():
        batches = {split: first_batch(datamodule, split) for split in SPLITS}
        twin = detached_copy(module)
        device = trainer.strategy.root_device if trainer.world_size == 1 else torch.device("cpu")
        precision = trainer.precision_plugin
        twin = precision.convert_module(twin).to(device)
        for split, batch in batches.items():
            if batch is not None:
                images, labels = batch
                images = precision.convert_input(images.to(device))
                step(twin, split, images, labels.to(device), precision)


def first_batch(datamodule: ImageDataModule, split: str) -> tuple[torch.Tensor, Any] | None:
    """The split's first samples through its transforms, or the error that stops them, named."""
    try:
        return datamodule.example_batch(split)
    except TrainlabError:
        raise
    except Exception as err:  # a transform or dataset that cannot take these images: say which split
        raise ConfigError(
            f"The first {split} images of data={chosen_option('data')} cannot be loaded and transformed: "
            f"{type(err).__name__}: {first_line(err)}. Check data.* ({where_defined('data')}), in particular "
            "data.train_transforms / data.eval_transforms."
        ) from None


def step(
    twin: ClassifierModule,
    split: str,
    images: torch.Tensor,
    labels: Any,
    precision: Any,
    loss_name: str | None = None,
) -> None:
    """One step of `split` (with backward for train); `loss_name`: the loss option, by default this
    run's (it names the shipped forms in an error)."""
    training = split == "train"
    twin.train(training)
    with torch.set_grad_enabled(training), precision.forward_context():
        try:
            outputs = twin(images) if training else twin.eval_outputs(images)
        except (RuntimeError, ValueError, TypeError) as err:
            raise model_error(split, images, err) from None
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("error", message=BROADCAST_WARNING, category=UserWarning)
                raw = twin.loss(outputs, labels)
        except TrainlabError:
            raise
        except Exception as err:  # whatever the criterion raises, the forms are the cause
            raise loss_error(twin.loss, outputs, labels, err, loss_name) from None
    loss = raw.mean() if raw.ndim else raw
    try:
        if training:
            loss.backward()
        twin.loss.predict(outputs.detach())
    except RuntimeError as err:
        raise ConfigError(
            f"model={chosen_option('model')} with loss={chosen_option('loss')}: the {split} step fails "
            f"after the loss: {first_line(err)}. Check model.* and loss.*."
        ) from None


def model_error(split: str, images: torch.Tensor, err: BaseException) -> ConfigError:
    return ConfigError(
        f"model={chosen_option('model')} cannot take the {split} images of data={chosen_option('data')}, "
        f"a batch of shape {tuple(images.shape)} ({images.dtype}): {first_line(err)}. The image's channels "
        "and size come from data.in_channels, data.image_size and the data.*_transforms (a Resize or crop "
        "sets the size); the model's from model.*."
    )


def loss_error(
    loss: Any, outputs: torch.Tensor, labels: Any, err: BaseException, name: str | None = None
) -> ConfigError:
    """The criterion refused the outputs or labels in the configured forms: name the forms that fit.
    `name`: the loss option (conf/loss/<name>.yaml), by default the one this run chose."""
    name = name or chosen_option("loss")
    criterion = type(getattr(loss, "criterion", loss)).__name__
    text = (
        f"loss={name}: {criterion} cannot take the network's outputs {tuple(outputs.shape)} and labels "
        f"{tuple(labels.shape) if hasattr(labels, 'shape') else ''} in the configured forms"
    )
    configured = (getattr(loss, "input_name", None), getattr(loss, "target_name", None))
    if configured[0] is not None:
        text += f" (loss.input={configured[0]}, loss.target={configured[1]})"
    text += f": {first_line(err)}."
    fitting = loss.forms_that_fit(outputs.detach(), labels) if hasattr(loss, "forms_that_fit") else []
    shipped = shipped_forms(name)
    if shipped in fitting:
        text += (
            f" It takes loss.input={shipped[0]} loss.target={shipped[1]}, as conf/loss/{name}.yaml ships "
            "it; set those (or leave them out)."
        )
    elif fitting:
        text += " Forms it takes: " + ", ".join(f"loss.input={i} loss.target={t}" for i, t in fitting) + "."
    else:
        text += f" No input/target form fits; check loss.* ({where_defined('loss')})."
    return ConfigError(text)


def shipped_forms(name: str | None) -> tuple[str, str] | None:
    """The (input, target) forms conf/loss/<name>.yaml ships, when it is a shipped classifier loss."""
    path = Path(trainlab.conf.__file__).parent / "loss" / f"{name}.yaml"
    if not name or not path.is_file():
        return None
    node = OmegaConf.load(path)
    if "input" not in node or "target" not in node:
        return None
    return str(node.input), str(node.target)


def first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0].rstrip(".")


def detached_copy(module: ClassifierModule) -> ClassifierModule:
    """A deep copy without the compiled network (compiling it is the run's own first step)."""
    compiled = module.__dict__.pop("compiled_net", None)
    try:
        twin = copy.deepcopy(module)
    finally:
        module.__dict__["compiled_net"] = compiled
    twin.__dict__["compiled_net"] = None
    return twin


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """The random generators as they were: the seeded run draws the same numbers after the rehearsal."""
    state = capture_rng_state()
    try:
        yield
    finally:
        restore_rng_state(state)
