"""Datamodules: each builds seeded train/val/test splits and serves them through the fast data path."""

from hyperlab.data.base import TensorDataModule
from hyperlab.data.digits import DigitsDataModule
from hyperlab.data.image_folder import ImageFolderDataModule
from hyperlab.data.mnist import MNISTDataModule
from hyperlab.data.tables import CSVDataModule, SklearnTableDataModule
from hyperlab.data.toy import BlobsDataModule, LineDataModule, MultilinearDataModule

__all__ = [
    "BlobsDataModule",
    "CSVDataModule",
    "DigitsDataModule",
    "ImageFolderDataModule",
    "LineDataModule",
    "MNISTDataModule",
    "MultilinearDataModule",
    "SklearnTableDataModule",
    "TensorDataModule",
]
