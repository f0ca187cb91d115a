"""Datamodules: each builds seeded train/val/test splits and serves them through the fast data path; their options
are declared in hyperlab.data.options.

Importing this package imports no torch: a datamodule's module is imported when the datamodule is first used
(`hyperlab.data.DigitsDataModule`, as conf/data/ names it), so that the config's check reads the options first."""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hyperlab.data.base import TensorDataModule
    from hyperlab.data.cifar import CIFAR10DataModule
    from hyperlab.data.digits import DigitsDataModule
    from hyperlab.data.image_folder import ImageFolderDataModule
    from hyperlab.data.mnist import MNISTDataModule
    from hyperlab.data.playground import PlaygroundDataModule
    from hyperlab.data.tables import CSVDataModule, SklearnTableDataModule
    from hyperlab.data.toy import BlobsDataModule, LineDataModule, MultilinearDataModule

MODULES = {  # each datamodule, by the module that defines it
    "BlobsDataModule": "toy",
    "CIFAR10DataModule": "cifar",
    "CSVDataModule": "tables",
    "DigitsDataModule": "digits",
    "ImageFolderDataModule": "image_folder",
    "LineDataModule": "toy",
    "MNISTDataModule": "mnist",
    "MultilinearDataModule": "toy",
    "PlaygroundDataModule": "playground",
    "SklearnTableDataModule": "tables",
    "TensorDataModule": "base",
}


def __getattr__(name: str) -> Any:
    if name in MODULES:
        return getattr(importlib.import_module(f"{__name__}.{MODULES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BlobsDataModule",
    "CIFAR10DataModule",
    "CSVDataModule",
    "DigitsDataModule",
    "ImageFolderDataModule",
    "LineDataModule",
    "MNISTDataModule",
    "MultilinearDataModule",
    "PlaygroundDataModule",
    "SklearnTableDataModule",
    "TensorDataModule",
]
