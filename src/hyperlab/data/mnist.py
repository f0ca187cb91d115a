"""MNIST and Fashion-MNIST from the official IDX files, decoded once into a uint8 tensor.

torchvision reads (and, if asked, downloads) the files in its layout: `<root>/MNIST/raw/` and
`<root>/FashionMNIST/raw/`. The datamodule then keeps the pixels as one uint8 tensor on the training device and
turns each batch into floats in [0, 1] there (as the course's `ToTensor` does per image).
"""

import functools
import socket
from pathlib import Path
from typing import Any

import torch
import torchvision.datasets
from torch import Tensor
from torchvision.datasets import MNIST

from hyperlab.data.augment import random_affine
from hyperlab.data.base import Split, TensorDataModule, split_indices
from hyperlab.data.options import DATASETS, MNISTDataModuleOptions
from hyperlab.errors import DataError

DOWNLOAD_TIMEOUT_S = 20  # per connection: offline, stop at once rather than hang


def read_splits(dataset_class: type[MNIST], raw_folder: Path, val_fraction: float, seed: int) -> dict[str, Split]:
    """The official files parsed by torchvision (uint8 images, N x 28 x 28) and split into train / val / test.
    Kept for the rest of the process, keyed by the files' path, size and time: a sweep's runs parse them once."""
    files = [raw_folder / name for name in raw_file_names(dataset_class)]
    stamp = tuple((str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.exists())
    return dict(_read_splits(dataset_class, str(raw_folder.parent.parent), val_fraction, seed, stamp))


@functools.lru_cache(maxsize=4)
def _read_splits(dataset_class: type[MNIST], root: str, val_fraction: float, seed: int, stamp: tuple) -> dict:
    train = dataset_class(root, train=True, download=False)
    test = dataset_class(root, train=False, download=False)
    index = split_indices(len(train.targets), val_fraction, 0, seed, labels=train.targets)
    return {
        "train": (train.data[index["train"]], train.targets[index["train"]]),
        "val": (train.data[index["val"]], train.targets[index["val"]]),
        "test": (test.data, test.targets),
    }


def only_classes(x: Tensor, y: Tensor, classes: list[int] | None) -> Split:
    """The samples of `classes` only, relabelled 0, 1, ... in that order (all of them for None)."""
    if not classes:
        return x, y
    relabel = torch.full((int(y.max()) + 1,), -1, dtype=torch.long)
    relabel[torch.tensor(classes)] = torch.arange(len(classes))
    keep = relabel[y] >= 0
    return x[keep], relabel[y[keep]]


def raw_file_names(dataset_class: type[MNIST]) -> list[str]:
    """The four uncompressed IDX files torchvision reads from `<root>/<class name>/raw/`."""
    return [name.removesuffix(".gz") for name, _ in dataset_class.resources]


class MNISTDataModule(TensorDataModule):
    """The 60,000 training images (a seeded, stratified share held out for validation) and the 10,000 test
    images of MNIST or Fashion-MNIST, as 1x28x28 floats in [0, 1]."""

    kind = "classification"
    options = MNISTDataModuleOptions

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.dataset_class: type[MNIST] = getattr(torchvision.datasets, DATASETS[self.dataset])
        self.classes = list(self.classes) if self.classes else None
        self._augmentation: tuple[tuple[int, str] | None, torch.Generator | None] = (None, None)  # (epoch, device)
        self.class_names = list(self.dataset_class.classes)
        if self.dataset == "mnist":
            self.class_names = [name.split(" - ")[0] for name in self.class_names]  # "0 - zero" -> "0"
        if self.classes:
            self.class_names = [self.class_names[c] for c in self.classes]

    @property
    def raw_folder(self) -> Path:
        return Path(self.root) / self.dataset_class.__name__ / "raw"

    def prepare_data(self) -> None:
        try:
            missing = [name for name in raw_file_names(self.dataset_class) if not (self.raw_folder / name).is_file()]
        except OSError as error:  # a folder on the way that can't be read
            raise DataError(f"cannot read {self.raw_folder}: {error.strerror} (see data.root)") from None
        if not missing:
            return
        name = self.dataset_class.__name__
        where = f"{name} files not found in {self.raw_folder.resolve()} (missing: {', '.join(missing)})"
        if not self.download:
            raise DataError(f"{where}; set data.download=true to fetch them, or data.root=<folder holding {name}/raw/>")
        previous_timeout = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
        try:
            self.dataset_class(self.root, train=True, download=True)
        except (RuntimeError, OSError) as error:
            reason = str(error).strip().splitlines()[-1]
            raise DataError(
                f"{where}, and downloading them failed ({reason}). On a machine without internet, copy the files "
                f"there or point data.root at a folder holding {name}/raw/"
            ) from None
        finally:
            socket.setdefaulttimeout(previous_timeout)

    def load(self) -> dict[str, Split]:
        try:
            splits = read_splits(self.dataset_class, self.raw_folder, self.val_fraction, self.seed)
        except (RuntimeError, ValueError, OSError, AssertionError) as error:  # torchvision asserts on bad headers
            name = self.dataset_class.__name__
            raise DataError(f"could not read the {name} files in {self.raw_folder}: {error}") from None
        return {split: only_classes(x, y, self.classes) for split, (x, y) in splits.items()}

    def transform(self, x: Tensor, train: bool) -> Tensor:
        images = x.unsqueeze(1).to(torch.float32).div_(255)
        if train and self.augment:
            generator = self.augmentation_generator(images.device)
            images = random_affine(images, self.augment_degrees, self.augment_translate, generator)
        return images

    def augmentation_generator(self, device: torch.device) -> torch.Generator:
        """Augmentation's own random stream, seeded by (shuffle_seed, epoch): both training loops draw the same
        augmentations (dropout draws from torch's stream, in another order relative to the data in each loop),
        and a run resumed at an epoch's start draws what the uninterrupted run drew."""
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        if self._augmentation[0] != (epoch, str(device)):
            generator = torch.Generator(device=device).manual_seed(self.shuffle_seed * 100_003 + epoch)
            self._augmentation = ((epoch, str(device)), generator)
        return self._augmentation[1]
