"""What every datamodule shares: seeded splits, and serving in-memory tensors through the fast data path."""

import math
from functools import partial
from typing import Any

import lightning as L
import torch
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split
from torch import Tensor
from torch.utils.data import DataLoader

from hyperlab.data.loaders import Chunk, Chunked, EpochSampler, TensorBatches, batch_loader
from hyperlab.data.options import TensorDataModuleOptions
from hyperlab.errors import ConfigError
from hyperlab.options import Options
from hyperlab.tasks.precision import input_dtype

Split = tuple[Tensor, Tensor]


def split_indices(
    num_samples: int,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    labels: Tensor | None = None,
    folds: int | None = None,
    fold: int = 0,
) -> dict[str, Tensor]:
    """Seeded train/val/test indices, stratified by `labels` when given (`test_fraction=0`: no test split). With
    `folds`, validation is fold `fold` of what the test split leaves (`fold_split`) and `val_fraction` is not used:
    the test split is drawn first, the same with folds or without."""
    index = torch.arange(num_samples)
    rest, test = index, index[:0]
    if test_fraction > 0:
        stratify = held_out_labels(num_samples, test_fraction, labels, "data.test_fraction")
        rest, test = train_test_split(index, test_size=test_fraction, random_state=seed, stratify=stratify)
    rest_labels = labels[rest] if labels is not None else None
    if folds is None:
        share = val_fraction / (1 - test_fraction)
        stratify = held_out_labels(len(rest), share, rest_labels, "data.val_fraction", val_fraction)
        train, val = train_test_split(rest, test_size=share, random_state=seed, stratify=stratify)
    else:
        train, val = fold_split(rest, folds, fold, seed, rest_labels)
    return {"train": train.sort().values, "val": val.sort().values, "test": test.sort().values}


def held_out_labels(num_samples: int, share: float, labels: Tensor | None, key: str, value: float | None = None) -> Any:
    """The labels to stratify a held-out split of `share` of `num_samples` by (None: not stratified, where it is too
    small to hold every class; scikit-learn would stop there), or a ConfigError naming `key` if it would hold no
    sample at all (`value`: the key's own, if `share` is derived from it)."""
    size = math.ceil(share * num_samples)
    if size < 1 or size >= num_samples:
        raise ConfigError(f"{key}={share if value is None else value} is not allowed: it holds out {size} of "
                          f"{num_samples} samples (at least 1, and fewer than all)")  # fmt: skip
    if labels is None or size < len(labels.unique()):
        return None
    return labels.numpy()


def fold_split(rest: Tensor, folds: int, fold: int, seed: int, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """k-fold cross-validation of the samples `rest`: (train, val), val being fold `fold` of `folds` seeded ones and
    train the others. Stratified by `labels` (scikit-learn's StratifiedKFold) where every class has a sample for each
    fold, else plain KFold; so each run of a K-fold sweep validates on other samples, and together they cover them."""
    if folds > len(rest):
        raise ConfigError(f"data.folds={folds} is not allowed: expected at most {len(rest)} (the samples the test "
                          "split leaves; one at least in each fold)")  # fmt: skip
    if labels is not None and labels.unique(return_counts=True)[1].min() < folds:
        labels = None
    if labels is None:
        splits = KFold(n_splits=folds, shuffle=True, random_state=seed).split(rest.numpy())
    else:
        splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(rest.numpy(), labels.numpy())
    train, val = list(splits)[fold]
    return rest[torch.from_numpy(train)], rest[torch.from_numpy(val)]


def stratified_split(
    labels: Tensor | None,
    num_samples: int,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    folds: int | None = None,
    fold: int = 0,
) -> dict[str, Tensor]:
    """`split_indices`, stratified by class where every class can have a sample in validation and in test (not for
    a tiny set, or more classes than the smaller held-out split has samples; decided by `val_fraction` with folds
    too, so that the test split is the same with folds or without)."""
    smallest = int(num_samples * min(val_fraction, test_fraction))
    if labels is not None and (torch.bincount(labels).min() < 5 or len(labels.unique()) > smallest):
        labels = None
    return split_indices(num_samples, val_fraction, test_fraction, seed, labels, folds, fold)


class TensorDataModule(L.LightningDataModule):
    """Base of the datamodules whose splits fit in memory. A subclass takes its own arguments and passes the
    batching ones (`batch_size`, `eval_batch_size`, `batches_per_step`, `seed`, `shuffle_seed`) through; hyperlab's
    own declare theirs in hyperlab.data.options (their `options`), and take them all as `**options`, each an
    attribute once this class has read them.

    A subclass builds its splits once in `load` (inputs as stored, e.g. uint8 pixels) and says how to turn a
    batch of stored inputs into model inputs in `transform`. This class keeps the splits, moves them once to the
    device the model trains on, and serves them as mini-batches (see `data.loaders`).

    After `setup`, `input_shape` and either `num_classes` + `class_names` (classification) or `num_targets`
    (regression) describe the data to the task and network.
    """

    kind: str  # "classification" or "regression" (a table decides when it reads its target)
    reference_label = ""  # what `reference_parameters` are, for data that knows the parameters to learn
    target_mean, target_std = 0.0, 1.0  # a regression target is learnt as (y - mean) / std (a table standardises it)

    options = TensorDataModuleOptions  # the batching options (a subclass's `options` declares its own too)

    def __init__(self, **options: Any) -> None:
        super().__init__()
        self.save_hyperparameters()  # with the subclass's arguments: they go into every checkpoint
        for name, value in vars(type(self).options(**options)).items():  # the options as declared, by name
            if not isinstance(getattr(type(self), name, None), property):  # (one the data tells: num_classes)
                setattr(self, name, value)
        self.splits: dict[str, Split] = {}
        self.class_names: list[str] | None = None
        # the fast loop's chunks of `batches_per_step` mini-batches, rather than one mini-batch per step: set when a
        # run is built, before its Trainer (`tasks.fast_loop.use_fast_loop`)
        self.serve_chunks = False
        self._on_device: dict[tuple[str, str, torch.dtype], Split] = {}

    @classmethod
    def check_options(cls, options: Options) -> None:
        """The ranges of the batching options, and of the held-out fractions of a datamodule that takes them (a
        datamodule of one's own calls it from its `check_options`); a subclass of a hyperlab datamodule that
        declares none of its own gets that datamodule's (`options`, inherited)."""
        cls.options.check_options(options)

    # -- what a subclass provides ---------------------------------------------------------------------------
    def reference_parameters(self) -> dict[str, float]:
        """The parameters a model should learn, where the data knows them (a line's least-squares fit), by name."""
        return {}

    def load(self) -> dict[str, Split]:
        """Build the train/val/test splits (called once)."""
        raise NotImplementedError

    def transform(self, x: Tensor, train: bool) -> Tensor:
        """Turn a batch of stored inputs into model inputs (`train` says whether to augment)."""
        return x

    # -- description for the task and network ------------------------------------------------------------
    @property
    def input_shape(self) -> list[int]:
        return list(self.transform(self.splits["train"][0][:1], train=False).shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names or [])

    @property
    def num_targets(self) -> int:
        targets = self.splits["train"][1]
        return 1 if targets.dim() == 1 else targets.shape[1]

    # -- Lightning hooks ----------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            self.splits = self.load()

    def train_dataloader(self) -> DataLoader | Chunked:
        x, _ = self.split_on_device("train")
        shards = (self.trainer.world_size, self.trainer.global_rank) if self.trainer is not None else (1, 0)
        return self._loader("train", self.batch_size, EpochSampler(len(x), self.shuffle_seed, *shards))

    def val_dataloader(self) -> DataLoader | Chunked:
        return self._loader("val", self.eval_batch_size)

    def test_dataloader(self) -> DataLoader | Chunked:
        return self._loader("test", self.eval_batch_size)

    def predict_dataloader(self) -> DataLoader:
        """The test split's inputs (and targets), a batch per `predict_step`: `trainer.predict` returns one tensor of
        class probabilities or values per batch."""
        x, y = self.split_on_device("test")
        return batch_loader(x, y, self.eval_batch_size, transform=partial(self.transform, train=False))

    def _loader(self, split: str, batch_size: int, sampler: EpochSampler | None = None) -> DataLoader | Chunked:
        """Lightning's DataLoader of mini-batches, or the fast loop's chunks when the run takes it (`serve_chunks`,
        see `tasks.fast_loop`); the same batches in the same order either way. Shuffled only for training."""
        x, y = self.split_on_device(split)
        transform = partial(self.transform, train=sampler is not None)
        if self.serve_chunks:
            return Chunked(TensorBatches(x, y, batch_size, sampler, transform), self.batches_per_step)
        return batch_loader(x, y, batch_size, sampler, transform)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """Our batches are cut on the training device already: skip Lightning's walk through their tensors."""
        first = batch[0][0] if isinstance(batch, Chunk) else batch[0]
        if isinstance(first, Tensor) and first.device == device:
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def split_on_device(self, split: str) -> Split:
        """The split's tensors on the device the trainer runs on, moved there once per run; floating ones in the dtype
        the trainer's precision gives the model's inputs (float64 for 64-true, ...), converted there once too, so that
        Lightning's conversion of each batch (`convert_input`) has nothing to do (32-true: nothing is converted)."""
        trainer = self.trainer
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        dtype = input_dtype(trainer.precision_plugin) if trainer is not None else torch.float32
        key = (split, str(device), dtype)
        if key not in self._on_device:
            x, y = self.splits[split]
            self._on_device[key] = (in_dtype(x.to(device), dtype), in_dtype(y.to(device), dtype))
        return self._on_device[key]


def in_dtype(tensor: Tensor, dtype: torch.dtype) -> Tensor:
    """A floating tensor in `dtype`; any other (labels, uint8 pixels: `transform` turns them into floats) as it is."""
    return tensor.to(dtype) if tensor.is_floating_point() else tensor
