import pytest

from configs import compose_train
from trainlab.core.build import build
from trainlab.errors import ConfigError


@pytest.mark.parametrize(("model", "size"), [("tudui", 4), ("lenet", 8)])
def test_a_value_a_network_refuses_names_the_data_key_it_comes_from(tmp_path, model, size):
    cfg = compose_train(tmp_path, f"model={model}", f"data.image_size={size}")
    with pytest.raises(ConfigError) as caught:
        build("model", cfg.model)
    message = str(caught.value)
    assert f"image_size={size}:" in message and "Error in call to target" not in message
    assert "model.image_size is ${data.image_size}: set data.image_size." in message
