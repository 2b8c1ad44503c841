"""The Lightning internals in trainlab.compat still mean what trainlab assumes (fails first on an upgrade)."""

from __future__ import annotations

import lightning.pytorch as L
import pytest
import torch
from torch.utils.data import DataLoader

from configs import compose_train
from modules import blobs, make_module
from trainlab import compat
from trainlab.callbacks.checkpoint import ModelCheckpoint
from trainlab.core.build import build
from trainlab.training.assemble import build_module, derive_schedule, prepare_data, run_length


class Probe(L.Callback):
    """Records, per training batch, what the compat readers say."""

    def __init__(self) -> None:
        self.last_batch: list[tuple[int, int, bool]] = []
        self.epochs_at_end: list[int] = []
        self.estimated: int | None = None

    def on_train_start(self, trainer, pl_module):
        self.estimated = trainer.estimated_stepping_batches

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.last_batch.append((trainer.current_epoch, batch_idx, compat.on_last_batch_of_epoch(trainer)))

    def on_train_epoch_end(self, trainer, pl_module):
        self.epochs_at_end.append(compat.epochs_trained(trainer))


def fit(tmp_path, limit=None, epochs=2, ckpt_path=None, callbacks=()):
    probe = Probe()
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        limit_train_batches=limit,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[probe, *callbacks],
        default_root_dir=tmp_path,
    )
    train = DataLoader(blobs(), batch_size=64)  # 4 batches
    trainer.fit(make_module(), train, DataLoader(blobs(seed=1), batch_size=128), ckpt_path=ckpt_path)
    return trainer, probe


@pytest.mark.parametrize(("limit", "batches"), [(None, 4), (3, 3)])
def test_the_last_batch_of_an_epoch_is_known_before_and_during_it(tmp_path, limit, batches):
    _, probe = fit(tmp_path, limit=limit)
    assert [last for *_, last in probe.last_batch] == ([False] * (batches - 1) + [True]) * 2
    assert probe.epochs_at_end == [1, 2]  # the epoch's training counts as done in its end hooks


def test_checkpoint_readers_and_the_step_triggered_save(tmp_path):
    saver = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="last", every_n_train_steps=3, save_top_k=1)
    trainer, _ = fit(tmp_path, callbacks=[saver])
    # every 3 steps of 4-batch epochs: steps 3 (mid-epoch 1) and 6 (mid-epoch 2); step 8 ends the run
    assert compat.step_trigger_due(saver, trainer) is False  # global_step 8
    checkpoint = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 6
    assert compat.checkpoint_epochs_trained(checkpoint) == 1
    assert compat.checkpoint_batches_into_epoch(checkpoint) == 2
    assert compat.checkpoint_position(checkpoint) == "in epoch 2 after 2 batches, step 6"
    compat.save_model_checkpoint_now(saver, trainer)  # with its bookkeeping: the path it saved
    assert torch.load(saver.best_model_path, weights_only=True)["global_step"] == 8


def test_a_step_triggered_save_on_an_epochs_last_batch_waits_for_its_validation(tmp_path):
    saver = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="last", every_n_train_steps=4, save_top_k=1)
    fit(tmp_path, epochs=1, callbacks=[saver])
    checkpoint = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 4 and compat.checkpoint_epochs_trained(checkpoint) == 1
    assert compat.checkpoint_position(checkpoint) == "after epoch 1, step 4"
    assert checkpoint["trainlab_val_acc_best"] > 0  # saved after the epoch's validation


@pytest.mark.parametrize(
    "trainer",
    [
        [],
        ["trainer.limit_train_batches=5", "trainer.accumulate_grad_batches=2"],
        # data.batch_size is the global batch of a step: it splits into the micro-batches
        ["trainer.limit_train_batches=0.5", "trainer.accumulate_grad_batches=3", "data.batch_size=63"],
        ["trainer.max_steps=7"],
    ],
)
def test_the_run_length_known_before_fit_is_lightnings_estimate(tmp_path, trainer):
    cfg = compose_train(tmp_path, "model=lenet", "trainer.max_epochs=2", *trainer)
    datamodule = prepare_data(cfg)
    probe = Probe()
    built = build("trainer", cfg.trainer, logger=False, callbacks=[probe], enable_progress_bar=False)
    planned = run_length(built, datamodule)
    derive_schedule(cfg, planned)
    built.fit(build_module(cfg, datamodule), datamodule=datamodule)
    assert planned.steps == probe.estimated


def test_logging_cadence_resumed_epochs_and_the_loader_state_hook(tmp_path):
    assert hasattr(L.Trainer().fit_loop, "_load_combined_loader_states")  # load_pending_loader_state's hook
    saver = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="last", every_n_train_steps=2, save_top_k=1)

    class Cadence(L.Callback):
        def __init__(self):
            self.logging, self.resumed = [], []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.logging.append(compat.logging_this_step(trainer))

        def on_train_epoch_end(self, trainer, pl_module):
            self.resumed.append(compat.resumed_epoch_in_progress(trainer))

    def run(epochs, max_steps=-1, ckpt_path=None):
        cadence = Cadence()
        trainer = L.Trainer(
            max_epochs=epochs,
            max_steps=max_steps,
            accelerator="cpu",
            logger=False,
            log_every_n_steps=2,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[cadence, saver],
            default_root_dir=tmp_path,
        )
        train = DataLoader(blobs(), batch_size=64)  # 4 batches
        trainer.fit(make_module(), train, DataLoader(blobs(seed=1), batch_size=128), ckpt_path=ckpt_path)
        return cadence

    first = run(epochs=3, max_steps=6)  # stops in epoch 2 after 2 of its batches, saved at step 6
    assert first.logging == [False, True] * 3  # every second step goes to the loggers
    assert first.resumed == [False, False]  # max_steps ends epoch 2 early; its end hooks still run
    resumed = run(epochs=3, ckpt_path=tmp_path / "ckpt" / "last.ckpt")
    assert resumed.resumed == [True, False]  # the epoch resumed mid-way, then a fresh one


def test_hydra_start_up_errors_go_through_trainlabs_explanation(capsys):
    """report_hydra_errors replaces Hydra's reporter: an explained error is one `error:` line and exit 1;
    an error it does not explain is reported by Hydra as before."""
    import hydra._internal.utils as hydra_utils

    from trainlab.compat import report_hydra_errors

    before = hydra_utils.run_and_report
    try:
        report_hydra_errors(lambda err: f"explained {err}" if isinstance(err, KeyError) else None)
        assert hydra_utils.run_and_report(lambda: 42) == 42

        def fails(err):
            def run():
                raise err

            return run

        with pytest.raises(SystemExit) as stopped:
            hydra_utils.run_and_report(fails(KeyError("k")))
        assert stopped.value.code == 1 and capsys.readouterr().err == "error: explained 'k'\n"
        with pytest.raises(SystemExit):
            hydra_utils.run_and_report(fails(ValueError("left to hydra")))
        assert "ValueError: left to hydra" in capsys.readouterr().err  # Hydra's own report
        report_hydra_errors(lambda err: None)  # installing twice wraps Hydra's, not the previous wrapper
        assert hydra_utils.run_and_report.__wrapped__ is getattr(before, "__wrapped__", before)
    finally:
        hydra_utils.run_and_report = before


def test_ddp_child_ranks_start_with_the_given_command():
    import os

    from hydra.core.hydra_config import HydraConfig
    from lightning.pytorch.strategies.launchers import subprocess_script

    trainer = L.Trainer(accelerator="cpu", strategy="ddp", devices=2, logger=False)
    stock = type(trainer.strategy._launcher)
    assert stock is subprocess_script._SubprocessScriptLauncher
    seen = []

    def command(local_rank):
        seen.append(local_rank)
        return ["true"], "."

    compat.start_child_ranks_with(trainer, command)
    launcher = trainer.strategy._launcher
    assert type(launcher) is not stock and isinstance(launcher, stock)
    assert (launcher.num_processes, launcher.num_nodes) == (2, 1)
    # the hook Lightning builds each child's command with, swapped only while children start
    assert callable(subprocess_script._hydra_subprocess_cmd)
    original = subprocess_script._hydra_subprocess_cmd
    launched = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(subprocess_script.subprocess, "Popen", lambda argv, **kw: launched.append((argv, kw)))
        mp.setattr(subprocess_script, "_hydra_subprocess_cmd", original)
        mp.setattr(HydraConfig, "initialized", staticmethod(lambda: True))
        mp.setattr(os, "environ", dict(os.environ))  # the launcher exports MASTER_ADDR, WORLD_SIZE, ...
        launcher._call_children_scripts()
        assert subprocess_script._hydra_subprocess_cmd is original
    assert seen == [1] and launched and launched[0][0] == ["true"]


def test_a_summary_writer_hands_out_its_file_writer(tmp_path):
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import scalar

    writer = SummaryWriter(tmp_path)
    compat.tensorboard_file_writer(writer).add_summary(scalar("x", 1.0))
    writer.close()
    assert list(tmp_path.glob("events.out.tfevents.*"))


def test_the_tqdm_bar_asks_should_redraw_each_step(tmp_path):
    from lightning.pytorch.callbacks import TQDMProgressBar

    asked = []

    class Bar(compat.GatedTQDMProgressBar, TQDMProgressBar):
        def should_redraw(self, current, total):
            asked.append((current, total))
            return False

    trainer = L.Trainer(
        max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False, callbacks=[Bar()]
    )
    trainer.fit(make_module(), DataLoader(blobs(64), batch_size=16))
    assert (1, 4) in asked and (4, 4) in asked


def test_an_mlflow_logger_not_yet_started_continues_a_given_run(tmp_path):
    from lightning.pytorch.loggers import MLFlowLogger

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = MLFlowLogger(experiment_name="e", tracking_uri=uri)
    first.log_metrics({"x": 1.0}, step=0)
    again = MLFlowLogger(experiment_name="e", tracking_uri=uri)
    compat.continue_tracker_run(again, first.run_id)
    again.log_metrics({"x": 2.0}, step=1)
    assert again.run_id == first.run_id
    assert [m.value for m in again.experiment.get_metric_history(first.run_id, "x")] == [1.0, 2.0]


def test_a_wandb_logger_not_yet_started_resumes_a_given_id_and_drops_unset_arguments(tmp_path):
    from lightning.pytorch.loggers import WandbLogger

    logger = WandbLogger(save_dir=tmp_path, offline=True)
    compat.drop_unset_wandb_arguments(logger)
    compat.continue_tracker_run(logger, "abc123")
    assert "anonymous" not in logger._wandb_init
    assert logger._wandb_init["id"] == "abc123" and logger._wandb_init["resume"] == "allow"
    assert logger.version == "abc123"  # what Lightning reports before the run starts


PRIVATE_API_ALLOWED = {"compat.py"}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _private_uses(path):
    """Private names of other packages used in one source file: `x._name` (not self/cls), imports of
    `_name` or from `pkg._internal`, getattr/setattr with a `"_name"` string."""
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            if not (isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"}):
                found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module != "__future__":
            if not node.module.startswith("trainlab") and (
                "._" in f".{node.module}" or any(a.name.startswith("_") for a in node.names)
            ):
                found.append(f"{node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names if "._" in a.name]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") in {"getattr", "setattr", "hasattr"}:
            name = node.args[1] if len(node.args) > 1 else None
            if isinstance(name, ast.Constant) and _private(str(name.value)):
                found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_private_apis_of_lightning_hydra_and_torch_are_used_only_in_compat():
    import pathlib

    import trainlab

    root = pathlib.Path(trainlab.__file__).parent
    uses = {
        str(path.relative_to(root)): _private_uses(path)
        for path in sorted(root.rglob("*.py"))
        if path.name not in PRIVATE_API_ALLOWED
    }
    assert {path: lines for path, lines in uses.items() if lines} == {}


def test_no_class_overrides_a_private_method_of_a_library_base():
    import importlib
    import inspect
    import pathlib

    import trainlab

    root = pathlib.Path(trainlab.__file__).parent
    overrides = []
    for path in sorted(root.rglob("*.py")):
        if path.name in PRIVATE_API_ALLOWED or path.name == "__main__.py":
            continue
        name = "trainlab." + ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        module = importlib.import_module(name)
        for cls in vars(module).values():
            if not inspect.isclass(cls) or cls.__module__ != name:
                continue
            library_bases = [b for b in cls.__mro__[1:] if not b.__module__.startswith("trainlab")]
            for attr in vars(cls):
                overridden = any(attr in vars(base) for base in library_bases)
                if _private(attr) and attr != "_abc_impl" and overridden:
                    overrides.append(f"{name}.{cls.__name__}.{attr}")
    assert overrides == []
