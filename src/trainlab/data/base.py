"""What every classification datamodule shares: checked sizes, transforms, loaders.

A dataset module only has to find its data and return the train/val/test datasets from `load_splits`;
class names, channel and class-count checks and the DataLoaders live here once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as L
import torch
from lightning.pytorch.accelerators import CUDAAccelerator
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset

from trainlab.data.batched import BatchTransform
from trainlab.data.datasets import collate_batch
from trainlab.data.sampling import EpochShuffleSampler, ResumableDataLoader
from trainlab.data.transforms import compose
from trainlab.errors import ConfigError, DataError


@dataclass
class Splits:
    """The datasets of one run; `test` is None when the data has no test split."""

    train: Dataset
    val: Dataset
    test: Dataset | None
    classes: list[str]


class ImageDataModule(L.LightningDataModule):
    """Base class: subclasses implement `load_splits()` (and `prepare_data()` if they download)."""

    task = "classification"  # losses declare the task they fit; trainlab checks the pair before training
    supports_batched = False  # True where the datasets are uint8 tensors in memory (data.pipeline=batched)

    def __init__(
        self,
        *,
        num_classes: int | None,
        in_channels: int,
        image_size: int,
        batch_size: int,
        num_workers: int = 0,
        train_transforms: Sequence[Any] | None = None,
        eval_transforms: Sequence[Any] | None = None,
        seed: int = 0,
        pipeline: str = "torchvision",
    ) -> None:
        super().__init__()
        _require_int("data.batch_size", batch_size, minimum=1)
        _require_int("data.num_workers", num_workers, minimum=0)
        _require_int("data.image_size", image_size, minimum=1)
        if in_channels not in (1, 3):
            raise ConfigError(f"data.in_channels={in_channels} is not supported: use 1 (grey) or 3 (RGB).")
        for key, transforms in (
            ("data.train_transforms", train_transforms),
            ("data.eval_transforms", eval_transforms),
        ):
            check_normalize_channels(key, transforms or [], in_channels)
        self.configured_num_classes = num_classes
        self.in_channels = in_channels
        self.image_size = image_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pipeline = check_pipeline(pipeline, type(self))
        self.batch_transforms: dict[str, BatchTransform] = {}
        if pipeline == "batched":
            # the datasets hand out raw uint8 batches; on_after_batch_transfer augments them on the device
            self.batch_transforms = {
                "train": BatchTransform.from_transforms(train_transforms or [], "data.train_transforms"),
                "eval": BatchTransform.from_transforms(eval_transforms or [], "data.eval_transforms"),
            }
        self.train_transform = None if self.batch_transforms else compose(train_transforms, image_size)
        self.eval_transform = None if self.batch_transforms else compose(eval_transforms, image_size)
        self.seed = seed
        self.splits: Splits | None = None

    def load_splits(self) -> Splits:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.splits is not None:
            return
        splits = self.load_splits()
        found = len(splits.classes)
        if self.configured_num_classes is not None and self.configured_num_classes != found:
            raise ConfigError(
                f"data.num_classes={self.configured_num_classes} but the dataset has {found} classes "
                f"({', '.join(splits.classes)}). Set data.num_classes={found}."
            )
        for name in ("train", "val"):
            if len(getattr(splits, name)) == 0:
                raise DataError(f"The {name} split of {type(self).__name__} is empty: add more images.")
        if found < 2:
            raise DataError(
                f"{type(self).__name__} found {found} class ({', '.join(splits.classes) or 'none'}): a "
                "classifier needs at least 2. Put each class's images in a folder of its own."
            )
        if self.task == "classification":
            check_labels_seen_in_training(splits)
        self.splits = splits

    def check_files(self) -> None:
        """Every image file of every split can be opened as an image (a header check; see
        trainlab.data.datasets.unreadable_files). Datasets held in memory have nothing to check."""
        splits = self._require_setup()
        problems: dict[Any, str] = {}
        for dataset in (splits.train, splits.val, splits.test):
            check = getattr(dataset, "unreadable_files", None)
            if check is not None:
                problems.update(check())
        if problems:
            shown = "; ".join(f"{path} ({why})" for path, why in list(problems.items())[:5])
            more = " ..." if len(problems) > 5 else ""
            raise DataError(
                f"{len(problems)} image file(s) cannot be read: {shown}{more}. "
                "Replace or remove them, or set data.skip_bad_images=true to leave unreadable images out."
            )

    def example_batch(self, split: str, size: int = 8) -> tuple[torch.Tensor, Any] | None:
        """The first `size` samples of `split` as the model receives them: loaded, transformed (the
        training split with its augmentation, seeded per sample) and collated as in training; None for
        a split the data does not have. Draws nothing from the global random generators."""
        dataset = getattr(self._require_setup(), split)
        if dataset is None or len(dataset) == 0:
            return None
        count = min(size, len(dataset))
        seed = int(self.seed)
        keys: list[Any] = [(i, seed) for i in range(count)] if split == "train" else list(range(count))
        # a generator of its own: a loader draws its workers' base seed when it starts
        loader = DataLoader(
            dataset, batch_size=count, sampler=keys, collate_fn=collate_batch, generator=torch.Generator()
        )
        batch = next(iter(loader))
        if self.batch_transforms:
            images, labels, seeds = batch
            stage = "train" if split == "train" else "eval"
            batch = (self.batch_transforms[stage](images, seeds), labels)
        return batch

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """data.pipeline=batched: augment and normalize the raw uint8 batch where it now is (the device)."""
        if not self.batch_transforms:
            return batch
        images, labels, seeds = batch
        stage = "train" if self.trainer is not None and self.trainer.training else "eval"
        images = self.batch_transforms[stage](images, seeds)
        if self.trainer is not None:  # the images became floats after Lightning's own cast (64-true, ...)
            images = self.trainer.precision_plugin.convert_input(images)
        return images, labels

    def model_ready(self, loader: DataLoader) -> Any:
        """An eval loader whose batches are already transformed, for loops that bypass this datamodule's
        on_after_batch_transfer (trainlab.eval passes loaders to the trainer directly)."""
        return _EvalBatches(loader, self.batch_transforms["eval"]) if self.batch_transforms else loader

    def example_input(self) -> torch.Tensor:
        """One validation image as the model sees it: (1, C, H, W) float."""
        sample = self._require_setup().val[0]
        if self.batch_transforms:
            return self.batch_transforms["eval"](sample[0].unsqueeze(0), torch.zeros(1, dtype=torch.int64))
        return sample[0].unsqueeze(0)

    @property
    def classes(self) -> list[str]:
        self._require_setup()
        return self.splits.classes

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def class_counts(self) -> list[int]:
        """Training samples per class (for `auto` class weights)."""
        labels = torch.as_tensor(self._require_setup().train.labels)
        return torch.bincount(labels, minlength=self.num_classes).tolist()

    def per_device_batch_size(self, world_size: int, accumulate: int = 1) -> int:
        """data.batch_size is the global batch of one optimizer step: every one of `world_size` devices
        takes an equal share, in `accumulate` micro-batches (trainer.accumulate_grad_batches), so a config
        trains the same on one device or many, with or without accumulation."""
        parts = world_size * accumulate
        if self.batch_size % parts:
            lower = self.batch_size - self.batch_size % parts
            raise ConfigError(
                f"data.batch_size={self.batch_size} is the global batch size and must split evenly over "
                f"the {world_size} devices of this run (trainer.devices x trainer.num_nodes) times "
                f"trainer.accumulate_grad_batches={accumulate} micro-batches: use "
                f"data.batch_size={lower or parts} or {lower + parts}."
            )
        return self.batch_size // parts

    def train_batches_per_epoch(self, world_size: int = 1, accumulate: int = 1) -> int:
        """Training (micro-)batches each of `world_size` devices runs per epoch (what train_dataloader
        yields)."""
        batch_size = self.per_device_batch_size(world_size, accumulate)
        sampler = EpochShuffleSampler(
            len(self._require_setup().train), self.seed, num_replicas=world_size, batch_size=batch_size
        )
        return -(-len(sampler) // batch_size)

    def train_dataloader(self) -> DataLoader:
        """Order and augmentations fixed by (seed, epoch, position): reproducible with any number of
        workers and devices, and resumable mid-epoch (see trainlab.data.sampling)."""
        dataset = self._require_setup().train
        world_size, rank = self._world()
        batch_size = self.per_device_batch_size(world_size, self._accumulate())
        sampler = EpochShuffleSampler(
            len(dataset),
            self.seed,
            self._current_epoch,
            num_replicas=world_size,
            rank=rank,
            batch_size=batch_size,
        )
        return ResumableDataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            batches_done=self._batches_done_this_epoch,
            generator=torch.Generator().manual_seed(self.seed + rank),  # worker seeds: not the global RNG
            **self._loader_options(),
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self._require_setup().val)

    def test_dataloader(self) -> DataLoader:
        test = self._require_setup().test
        if test is None:
            raise DataError(f"{type(self).__name__} has no test split; run with test=false.")
        return self._eval_loader(test)

    @property
    def has_test_split(self) -> bool:
        return self._require_setup().test is not None

    def _eval_loader(self, dataset: Dataset) -> DataLoader:
        """Under DDP every sample is scored exactly once: rank r takes samples r, r+W, ... with no padding
        (a DistributedSampler would repeat samples to even out the ranks and skew the metrics)."""
        world_size, rank = self._world()
        sampler = (
            UnrepeatedDistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=False)
            if world_size > 1
            else None
        )
        batch_size = self.per_device_batch_size(world_size)
        return DataLoader(
            dataset, batch_size=batch_size, sampler=sampler, shuffle=False, **self._loader_options()
        )

    def _loader_options(self) -> dict[str, Any]:
        trainer = self.trainer
        on_gpu = trainer is not None and isinstance(trainer.accelerator, CUDAAccelerator)
        return {
            "collate_fn": collate_batch,  # batched datasets hand out ready batches; others are collated
            "num_workers": self.num_workers,
            "persistent_workers": False,  # the exact-resume tests run with fresh workers each epoch
            "pin_memory": on_gpu,  # page-locked batches let Lightning copy them to the GPU asynchronously
        }

    def _world(self) -> tuple[int, int]:
        """(number of devices, this process's rank) of the run; (1, 0) outside a trainer."""
        trainer = self.trainer
        return (1, 0) if trainer is None else (trainer.world_size, trainer.global_rank)

    def _accumulate(self) -> int:
        """Micro-batches per optimizer step (trainer.accumulate_grad_batches; 1 outside a trainer)."""
        trainer = self.trainer
        return 1 if trainer is None else int(trainer.accumulate_grad_batches)

    def _current_epoch(self) -> int:
        """The epoch the trainer is in or about to start (0 outside fitting)."""
        trainer = self.trainer
        return 0 if trainer is None else trainer.fit_loop.epoch_progress.current.processed

    def _batches_done_this_epoch(self) -> int:
        """Batches of the current epoch the trainer has taken (0 outside fitting)."""
        trainer = self.trainer
        if trainer is None:
            return 0
        return trainer.fit_loop.epoch_loop.batch_progress.current.ready

    def _require_setup(self) -> Splits:
        if self.splits is None:
            raise RuntimeError(f"{type(self).__name__}.setup() has not run yet")
        return self.splits


class _EvalBatches:
    def __init__(self, loader: DataLoader, transform: BatchTransform) -> None:
        self.loader, self.transform = loader, transform

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Any:
        for images, labels, seeds in self.loader:
            yield self.transform(images, seeds), labels


PIPELINES = ("torchvision", "batched")


def check_normalize_channels(key: str, transforms: Sequence[Any], in_channels: int) -> None:
    """A Normalize with one mean/std per channel must have as many as the images have channels (one
    value is broadcast to all)."""
    for index, transform in enumerate(transforms):
        mean = getattr(transform, "mean", None)
        if mean is None or not hasattr(transform, "std") or isinstance(mean, float | int):
            continue
        if len(mean) not in (1, in_channels):
            raise ConfigError(
                f"{key}[{index}] is a {type(transform).__name__} with {len(mean)} mean and std values, but "
                f"data.in_channels={in_channels} makes {in_channels}-channel images: give it {in_channels} "
                f"value{'s' if in_channels > 1 else ''} or one for all channels (e.g. mean: [0.5], std: "
                f"[0.5]){f', or set data.in_channels={len(mean)}' if len(mean) in (1, 3) else ''}."
            )


def check_labels_seen_in_training(splits: Splits) -> None:
    """A class that validation or test score but training never showed cannot be learned."""
    trained = set(torch.as_tensor(splits.train.labels).tolist())
    for name in ("val", "test"):
        dataset = getattr(splits, name)
        if dataset is None or not hasattr(dataset, "labels"):
            continue
        unseen = sorted(set(torch.as_tensor(dataset.labels).tolist()) - trained)
        if unseen:
            names = [splits.classes[i] for i in unseen if 0 <= i < len(splits.classes)]
            raise DataError(
                f"The {name} split has images of class(es) {names} that the train split has none of, so "
                "the model could never learn them: add training images of those classes, or change the "
                "split (data.split, or the folders of a split layout)."
            )


def check_pipeline(pipeline: str, module: type) -> str:
    if pipeline not in PIPELINES:
        raise ConfigError(f"data.pipeline={pipeline!r} is unknown: use torchvision or batched.")
    if pipeline == "batched" and not getattr(module, "supports_batched", False):
        raise ConfigError(
            f"data.pipeline=batched needs a dataset held in memory as uint8 tensors, which "
            f"{module.__name__} is not; use data.pipeline=torchvision."
        )
    return pipeline


def _require_int(key: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{key}={value!r} is invalid: expected an integer >= {minimum}.")
