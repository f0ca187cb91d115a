"""MNIST and Fashion-MNIST from the official IDX files, decoded once into a uint8 tensor.

torchvision reads (and, if asked, downloads) the files in its layout: `<root>/MNIST/raw/` and
`<root>/FashionMNIST/raw/`. The datamodule then keeps the pixels as one uint8 tensor on the training device and
turns each batch into floats in [0, 1] there (as the course's `ToTensor` does per image).
"""

import socket
from pathlib import Path

import torch
from torch import Tensor
from torchvision.datasets import MNIST, FashionMNIST

from hyperlab.data.augment import random_affine
from hyperlab.data.base import Split, TensorDataModule, split_indices
from hyperlab.errors import DataError

DATASETS = {"mnist": MNIST, "fashion_mnist": FashionMNIST}
DOWNLOAD_TIMEOUT_S = 20  # per connection: offline, stop at once rather than hang


class MNISTDataModule(TensorDataModule):
    """The 60,000 training images (a seeded, stratified share held out for validation) and the 10,000 test
    images of MNIST or Fashion-MNIST, as 1x28x28 floats in [0, 1]."""

    kind = "classification"

    def __init__(
        self,
        dataset: str,
        root: str,
        download: bool,
        val_fraction: float,
        augment: bool,
        augment_degrees: float,
        augment_translate: float,
        batch_size: int,
        eval_batch_size: int,
        batches_per_step: int,
        seed: int,
        shuffle_seed: int,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, batches_per_step, seed, shuffle_seed)
        self.save_hyperparameters()
        self.dataset_class = DATASETS[dataset]
        self.root = root
        self.download = download
        self.val_fraction = val_fraction
        self.augment = augment
        self.augment_degrees = augment_degrees
        self.augment_translate = augment_translate
        self.class_names = list(self.dataset_class.classes)
        if dataset == "mnist":
            self.class_names = [name.split(" - ")[0] for name in self.class_names]  # "0 - zero" -> "0"

    @property
    def raw_folder(self) -> Path:
        return Path(self.root) / self.dataset_class.__name__ / "raw"

    def expected_files(self) -> list[str]:
        return [name.removesuffix(".gz") for name, _ in self.dataset_class.resources]

    def prepare_data(self) -> None:
        missing = [name for name in self.expected_files() if not (self.raw_folder / name).is_file()]
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
            train = self.dataset_class(self.root, train=True, download=False)
            test = self.dataset_class(self.root, train=False, download=False)
        except (RuntimeError, ValueError, OSError, AssertionError) as error:  # torchvision asserts on bad headers
            name = self.dataset_class.__name__
            raise DataError(f"could not read the {name} files in {self.raw_folder}: {error}") from None
        index = split_indices(len(train.targets), self.val_fraction, 0, self.seed, labels=train.targets)
        return {
            "train": (train.data[index["train"]], train.targets[index["train"]]),
            "val": (train.data[index["val"]], train.targets[index["val"]]),
            "test": (test.data, test.targets),
        }

    def transform(self, x: Tensor, train: bool) -> Tensor:
        images = x.unsqueeze(1).to(torch.float32).div_(255)
        if train and self.augment:
            images = random_affine(images, self.augment_degrees, self.augment_translate)
        return images
