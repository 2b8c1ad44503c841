"""Typed schemas: every shipped option passes; wrong types and out-of-range values name key and rule."""

from __future__ import annotations

import pytest
from hydra.core.config_store import ConfigStore

from configs import compose_train, options
from trainlab.core.schema import SCHEMAS, validate
from trainlab.errors import ConfigError


def test_schemas_are_in_hydras_config_store():
    for name, schema in SCHEMAS.items():
        node = ConfigStore.instance().load(f"schema/{name}.yaml").node
        assert node._metadata.object_type is schema


@pytest.mark.parametrize("group", ["data", "optim", "trainer"])
def test_every_shipped_option_passes(tmp_path, group):
    for option in options(group):
        validate(compose_train(tmp_path, f"{group}={option}"))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.max_epochs=abc", "trainer.max_epochs='abc' is invalid: expected an integer >= -1"),
        ("trainer.log_every_n_steps=0", "trainer.log_every_n_steps=0 is invalid: expected an integer >= 1"),
        ("trainer.gradient_clip_val=-1", "expected a number >= 0, or null"),
        ("data.batch_size=0", "data.batch_size=0 is invalid: expected an integer >= 1"),
        ("data.batch_size=1.5", "data.batch_size=1.5 is invalid: expected an integer >= 1"),
        ("data.num_workers=-1", "data.num_workers=-1 is invalid: expected an integer >= 0"),
        ("data.in_channels=2", "data.in_channels=2 is invalid: expected one of 1, 3"),
        ("optim.lr=-1", "optim.lr=-1 is invalid: expected a number >= 0"),
        ("optim.lr=fast", "optim.lr='fast' is invalid: expected a number >= 0"),
        ("optim.weight_decay=-0.1", "optim.weight_decay=-0.1 is invalid"),
        ("seed=1.5", "seed=1.5 is invalid: expected an integer"),
        ("test=maybe", "test='maybe' is invalid: expected true or false"),
        ("nonfinite_loss=ignore", "nonfinite_loss='ignore' is invalid: expected one of stop, skip"),
        ("tta=rotate", "tta='rotate' is invalid: expected one of flip"),
    ],
)
def test_bad_values_name_key_value_and_rule(tmp_path, override, message):
    with pytest.raises(ConfigError) as caught:
        validate(compose_train(tmp_path, override))
    assert message in str(caught.value)
    assert "Fix it on the command line or in" in str(caught.value)


def test_interpolations_are_checked_resolved(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.image_size=0 is invalid: expected an integer >= 1"):
        validate(compose_train(tmp_path, "seed=0", "data.image_size=${seed}"))
