"""Every shipped config composes, and every object-building group instantiates for real."""

import functools

import pytest
import torch
from omegaconf import OmegaConf, open_dict

from configs import compose_train, options
from trainlab.core.build import build, shipped_options_for
from trainlab.optim.schedulers import RunLength, build_scheduler, resolve_lengths
from trainlab.training.assemble import build_optimizer_parts

GROUPS = (
    "data",
    "normalize",
    "model",
    "loss",
    "optim",
    "scheduler",
    "trainer",
    "logger",
    "callbacks",
    "paths",
    "hydra",
    "experiment",
    "hparams_search",
)


@pytest.mark.parametrize("group", GROUPS)
def test_every_config_group_exists_and_has_options(group):
    assert options(group), f"conf/{group}/ has no options"


@pytest.mark.parametrize("option", options("data"))
def test_every_data_option_composes_with_every_model(tmp_path, option):
    for model in options("model"):
        cfg = compose_train(tmp_path, f"data={option}", f"model={model}")
        assert cfg.model.in_channels == cfg.data.in_channels


SEQUENCE_MODELS = shipped_options_for("model", "sequence")


@pytest.mark.parametrize("option", options("model"))
def test_every_model_builds_and_maps_images_to_class_scores(tmp_path, option):
    """Classifiers: a score per class. Sequence models (digit strings): per time step, classes + blank."""
    data = "data=digit_strings" if option in SEQUENCE_MODELS else "data=digits"
    cfg = compose_train(tmp_path, f"model={option}", data)
    net = build("model", cfg.model)
    width = cfg.data.get("width", cfg.data.image_size)
    x = torch.randn(2, cfg.data.in_channels, cfg.data.image_size, width)
    if option in SEQUENCE_MODELS:
        assert net(x).shape == (2, width // 4, cfg.data.num_classes + 1)
    else:
        assert net(x).shape == (2, cfg.data.num_classes)


@pytest.mark.parametrize("option", options("optim"))
def test_every_optimizer_is_a_partial_completed_with_parameters(tmp_path, option):
    cfg = compose_train(tmp_path, f"optim={option}")
    parts = build_optimizer_parts(cfg)
    assert parts["param_groups"] == [] and parts["no_decay"] is False
    factory = parts["optimizer"]
    assert isinstance(factory, functools.partial)
    optimizer = factory(params=torch.nn.Linear(2, 2).parameters())
    assert isinstance(optimizer, torch.optim.Optimizer)
    assert optimizer.param_groups[0]["lr"] == cfg.optim.lr


@pytest.mark.parametrize("option", options("scheduler"))
def test_every_scheduler_builds_into_a_lightning_config_and_moves_the_lr(tmp_path, option):
    cfg = compose_train(tmp_path, f"scheduler={option}")
    with open_dict(cfg):
        resolve_lengths(cfg.scheduler, RunLength(epochs=10, steps_per_epoch=10))
    spec = build("scheduler", cfg.scheduler)
    assert spec["interval"] in ("epoch", "step")
    optimizer = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=cfg.optim.lr, momentum=0.9)
    config = build_scheduler(spec, optimizer)
    if option == "none":
        assert config is None
        return
    scheduler = config["scheduler"]
    lrs = []
    for _ in range(20):
        optimizer.step()
        scheduler.step(1.0) if option == "plateau" else scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    assert len(set(lrs)) > 1 and all(lr >= 0 for lr in lrs), lrs


@pytest.mark.parametrize("option", options("experiment"))
def test_experiments_compose(tmp_path, option):
    cfg = compose_train(tmp_path, f"experiment={option}")
    assert OmegaConf.to_container(cfg, resolve=True)


def test_tutorial_rmb_is_the_tutorial_recipe(tmp_path):
    cfg = compose_train(tmp_path, "experiment=tutorial_rmb")
    assert cfg.model._target_.endswith("LeNet") and cfg.data.classes == ["1", "100"]
    assert (cfg.optim.lr, cfg.optim.momentum, cfg.data.batch_size, cfg.trainer.max_epochs) == (
        0.01,
        0.9,
        16,
        10,
    )
    assert cfg.scheduler.scheduler._target_.endswith("StepLR")
    assert (cfg.scheduler.scheduler.step_size, cfg.scheduler.scheduler.gamma) == (10, 0.1)
    names = [t._target_.rsplit(".", 1)[1] for t in cfg.data.train_transforms]
    assert names == ["Resize", "RandomCrop", "RandomGrayscale", "ToTensor", "Normalize"]
    assert cfg.data.train_transforms[2].p == 0.8
    assert [t._target_.rsplit(".", 1)[1] for t in cfg.data.eval_transforms] == [
        "Resize",
        "ToTensor",
        "Normalize",
    ]


def test_tutorial_cifar10_is_the_tutorial_recipe(tmp_path):
    cfg = compose_train(tmp_path, "experiment=tutorial_cifar10")
    assert (
        cfg.model._target_.endswith("TutorialCNN")
        and cfg.loss.criterion._target_ == "torch.nn.CrossEntropyLoss"
    )
    assert cfg.optim._target_ == "torch.optim.SGD" and cfg.optim.lr == 0.01 and cfg.optim.momentum == 0.0
    assert cfg.scheduler.scheduler is None


def test_cifar10_fast_is_the_fast_recipe(tmp_path):
    cfg = compose_train(tmp_path, "experiment=cifar10_fast")
    assert cfg.model._target_.endswith("FastNet") and cfg.data.batch_size == 512
    optim = cfg.optim
    assert (optim.lr, optim.momentum, optim.nesterov, optim.no_decay) == (0.4, 0.9, True, True)
    assert cfg.loss.criterion.label_smoothing == 0.2
    assert cfg.scheduler.scheduler._target_.endswith("OneCycleLR") and cfg.scheduler.interval == "step"
    assert cfg.callbacks.ema._target_.endswith("EMAWeightAveraging")
    assert (cfg.tta, cfg.perf.channels_last, cfg.trainer.precision) == ("flip", True, "bf16-mixed")
    assert cfg.data.train_transforms[0].padding_mode == "reflect"
    # the recipe keeps its transforms when the data option changes to the JPEG folder of the same images
    jpeg = compose_train(tmp_path, "experiment=cifar10_fast", "data=cifar10_jpeg")
    assert jpeg.data._target_.endswith("ImageFolderDataModule") and jpeg.data.batch_size == 512
    assert jpeg.data.train_transforms == cfg.data.train_transforms


@pytest.mark.parametrize("option", options("logger") + options("callbacks"))
def test_loggers_and_callbacks_build(tmp_path, option):
    group = "logger" if option in options("logger") else "callbacks"
    cfg = compose_train(tmp_path, f"{group}={option}")
    for node in (cfg[group] or {}).values():
        assert build(group, node) is not None


@pytest.mark.parametrize("option", options("hparams_search"))
def test_search_spaces_name_only_shipped_options_and_existing_keys(tmp_path, option):
    """A typo in a search space would otherwise only surface trials into a search."""
    from hydra import compose, initialize_config_module
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep

    with initialize_config_module(config_module="trainlab.conf", version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"hparams_search={option}",
                f"paths.output_dir={tmp_path}",
                f"paths.data_dir={tmp_path}",
            ],
            return_hydra_config=True,
        )
    assert cfg.hydra.mode.name == "MULTIRUN" and cfg.hydra.sweeper.direction == "maximize"
    parser = OverridesParser.create()
    for key, space in cfg.hydra.sweeper.params.items():
        override = parser.parse_override(f"{key}={space}")
        if key in GROUPS:  # a config group: every choice must be a file in conf/<group>/
            assert isinstance(override.value(), ChoiceSweep)
            assert set(override.value().list) <= set(options(key)), (key, override.value().list)
        else:  # a value: the key must exist in the composed config
            group, _, leaf = key.rpartition(".")
            assert leaf in cfg[group], f"{key} is not a key of the composed config"


CPU_TRAINERS = {"default", "cpu", "ddp_cpu", "debug"}


@pytest.mark.parametrize("option", options("trainer"))
def test_every_trainer_option_composes_and_builds_where_its_devices_exist(tmp_path, option):
    cfg = compose_train(tmp_path, f"trainer={option}")
    node = OmegaConf.to_container(cfg.trainer, resolve=True)
    distributed = option in ("ddp", "ddp_cpu", "multinode")
    assert (node["strategy"] == "ddp") is distributed and node["sync_batchnorm"] is distributed
    if option in ("gpu", "ddp", "multinode"):
        assert node["accelerator"] == "gpu" and node["precision"] in ("bf16-mixed", "16-mixed")
    if option == "multinode":
        assert node["num_nodes"] == 2
    if option not in CPU_TRAINERS and torch.cuda.device_count() < (2 if distributed else 1):
        pytest.skip(f"trainer={option} needs GPUs")
    trainer = build("trainer", cfg.trainer, logger=False, enable_checkpointing=False)
    gpus = torch.cuda.device_count()
    assert trainer.world_size == {"ddp_cpu": 2, "ddp": gpus, "multinode": 2 * gpus}.get(option, 1)


def test_gpu_precision_is_bf16_where_the_gpu_has_it(monkeypatch):
    from trainlab.core.resolvers import gpu_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert gpu_precision() == "16-mixed"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert gpu_precision() == "bf16-mixed"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_precision() == "bf16-mixed"


def compose_with_hydra(*overrides: str):
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="trainlab.conf", version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


def test_slurm_launcher_asks_for_the_trainers_nodes_and_gpus():
    from hydra.utils import instantiate

    cfg = compose_with_hydra(
        "hydra/launcher=slurm", "trainer=multinode", "trainer.devices=4", "hydra.launcher.timeout_min=30"
    )
    launcher = instantiate(cfg.hydra.launcher)
    assert type(launcher).__name__ == "SlurmLauncher"  # hydra-submitit-launcher's
    expected = {"nodes": 2, "tasks_per_node": 4, "gpus_per_node": 4, "timeout_min": 30}
    assert {key: launcher.params[key] for key in expected} == expected
    cpu = instantiate(compose_with_hydra("hydra/launcher=slurm", "trainer=ddp_cpu").hydra.launcher)
    assert (cpu.params["tasks_per_node"], cpu.params["gpus_per_node"]) == (2, None)


def test_slurm_launcher_refuses_all_gpus_it_cannot_count():
    from hydra.utils import instantiate

    with pytest.raises(Exception, match=r"trainer.devices=-1: a SLURM job needs the number of devices"):
        instantiate(compose_with_hydra("hydra/launcher=slurm", "trainer=ddp").hydra.launcher)


NORMALIZE_STATS = {  # each data option's Normalize statistics, as before they moved to conf/normalize/
    "digits": ([0.5], [0.5]),
    "digit_strings": ([0.5], [0.5]),
    "cifar10": ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]),
    "cifar10_jpeg": ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]),
    "imagefolder": ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    "rmb": ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
}


def normalize_stats(cfg) -> list:
    data = OmegaConf.to_container(cfg.data, resolve=True)
    steps = data["train_transforms"] + data["eval_transforms"]
    return [(t["mean"], t["std"]) for t in steps if t["_target_"].endswith(".Normalize")]


@pytest.mark.parametrize("option", options("data"))
def test_train_and_eval_normalize_with_the_statistics_the_data_option_picks(tmp_path, option):
    """mean/std are written once (conf/normalize/): one override changes training and evaluation alike."""
    assert normalize_stats(compose_train(tmp_path, f"data={option}")) == [NORMALIZE_STATS[option]] * 2
    changed = compose_train(tmp_path, f"data={option}", "normalize.mean=[0.25]", "normalize.std=[0.125]")
    assert normalize_stats(changed) == [([0.25], [0.125])] * 2
    other = compose_train(tmp_path, f"data={option}", "normalize=imagenet")
    assert normalize_stats(other) == [NORMALIZE_STATS["imagefolder"]] * 2


@pytest.mark.parametrize("data", ["cifar10", "cifar10_jpeg"])
def test_cifar10_fast_normalizes_with_the_cifar10_statistics(tmp_path, data):
    cfg = compose_train(tmp_path, "experiment=cifar10_fast", f"data={data}")
    assert normalize_stats(cfg) == [NORMALIZE_STATS["cifar10"]] * 2


def test_rmb_is_imagefolder_with_its_own_layout_classes_and_training_transforms(tmp_path):
    rmb = OmegaConf.to_container(compose_train(tmp_path, "data=rmb").data)
    folder = OmegaConf.to_container(compose_train(tmp_path, "data=imagefolder").data)
    assert list(rmb) == list(folder)  # the same keys in the same order: inherited through its defaults list
    own = {"root", "layouts", "classes", "num_classes", "image_size", "batch_size", "pipeline"}
    assert {key for key in rmb if rmb[key] != folder[key]} == own | {"train_transforms"}


TORCH_DETAILS = {"foreach", "maximize", "capturable", "differentiable"}  # eps is tuned: kept


@pytest.mark.parametrize("option", options("optim"))
def test_optimizer_configs_list_arguments_of_their_class_and_leave_the_rest_to_torch(tmp_path, option):
    """Only lr and the optimizer's own hyperparameters; implementation switches keep torch's defaults."""
    import inspect

    from hydra.utils import get_class

    node = OmegaConf.to_container(compose_train(tmp_path, f"optim={option}").optim)
    accepted = set(inspect.signature(get_class(node["_target_"]).__init__).parameters) - {"self", "params"}
    keys = {key for key in node if not key.startswith("_")} - {"param_groups", "no_decay"}
    assert "lr" in keys and keys <= accepted, keys - accepted
    assert not keys & TORCH_DETAILS


@pytest.mark.parametrize("option", ["lbfgs", "rprop"])
def test_full_batch_optimizers_set_a_batch_that_spans_most_of_digits(tmp_path, option):
    """LBFGS's curvature history and Rprop's sign steps need (near) full batches; digits has 1,797 images."""
    cfg = compose_train(tmp_path, f"optim={option}")
    train_images = int(1797 * cfg.data.split[0])
    assert cfg.data.batch_size >= (train_images if option == "lbfgs" else train_images / 4)
