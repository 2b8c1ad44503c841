"""Per-class reports, and rebuilding a model from a checkpoint's own config (eval and predict share it)."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from trainlab.checkpoints.restore import apply_overrides, parse_key_values
from trainlab.errors import ConfigError
from trainlab.eval import class_report, default_out_dir, macro_average


def test_class_report_matches_scikit_learn():
    rng = torch.Generator().manual_seed(0)
    truth = torch.randint(0, 4, (300,), generator=rng)
    predicted = torch.where(
        torch.rand(300, generator=rng) < 0.7, truth, torch.randint(0, 4, (300,), generator=rng)
    )
    predicted[predicted == 3] = 2  # class 3 is never predicted: precision 0, not NaN
    matrix = torch.as_tensor(confusion_matrix(truth, predicted, labels=range(4)))
    report = class_report(matrix, ["a", "b", "c", "d"])
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=range(4), zero_division=0
    )
    for i, row in enumerate(report):
        assert row["precision"] == pytest.approx(precision[i]) and row["recall"] == pytest.approx(recall[i])
        assert row["f1"] == pytest.approx(f1[i]) and row["support"] == support[i]
    assert report[3]["precision"] == 0.0 and report[3]["class"] == "d"
    assert macro_average(report)["f1"] == pytest.approx(f1.mean())


def test_default_eval_dir_sits_in_the_run_dir(tmp_path):
    assert (
        default_out_dir(tmp_path / "run" / "checkpoints" / "last.ckpt", "test")
        == tmp_path / "run" / "eval-test-last"
    )
    assert default_out_dir(tmp_path / "model.ckpt", "val") == tmp_path / "eval-val-model"


def test_key_values_split_into_options_and_config_overrides():
    options, overrides = parse_key_values(
        ["ckpt_path=a.ckpt", "data.root=/d", "split=val"], {"ckpt_path": None, "split": "test"}, "usage"
    )
    assert options == {"ckpt_path": "a.ckpt", "split": "val"} and overrides == ["data.root=/d"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["split=val"], "ckpt_path is required"),
        (["ckpt_path"], "'ckpt_path' is not key=value"),
        (["ckpt_path=a", "spilt=val"], "Unknown option 'spilt'"),
    ],
)
def test_bad_key_values_are_named(argv, message):
    with pytest.raises(ConfigError, match=message):
        parse_key_values(argv, {"ckpt_path": None, "split": "test"}, "usage")


def test_overrides_change_existing_keys_with_yaml_types_and_refuse_unknown_ones(tmp_path):
    cfg = OmegaConf.create({"data": {"root": "/old", "batch_size": 64}})
    apply_overrides(cfg, ["data.root=/new", "data.batch_size=256"], tmp_path / "x.ckpt")
    assert cfg.data.root == "/new" and cfg.data.batch_size == 256
    with pytest.raises(ConfigError, match=r"data\.rot is not a key of the run config stored in"):
        apply_overrides(cfg, ["data.rot=/new"], tmp_path / "x.ckpt")


def test_override_values_are_typed_by_omegaconf_and_replace_the_node(tmp_path):
    cfg = OmegaConf.create({"paths": {"d": "/p"}, "data": {"root": "/old", "lr": 0.1, "kw": {"a": 1}}})
    apply_overrides(cfg, ["data.root=${paths.d}/x", "data.lr=1e-3", "data.kw={b: 2}"], tmp_path / "x.ckpt")
    assert cfg.data.root == "/p/x" and cfg.data.lr == 0.001 and cfg.data.kw == {"b": 2}
    with pytest.raises(ConfigError, match=r"Cannot set data\.lr=\[1"):
        apply_overrides(cfg, ["data.lr=[1"], tmp_path / "x.ckpt")
