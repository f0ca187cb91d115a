"""CIFAR-10 from torchvision's files, `<root>/cifar-10-batches-py/` (data_batch_1..5, test_batch, batches.meta),
decoded once into a uint8 tensor (N x 3 x 32 x 32) and served by the fast path MNIST takes.

The files are Python pickles. torchvision reads them with `pickle.load`, which runs whatever a file names: hyperlab
reads them with an unpickler that allows numpy's arrays and nothing else (hyperlab.data.safe_pickle), then checks
what it got (`data` uint8 N x 3072, `labels` N integers from 0 to 9, ten class names) and refuses anything else in
one line naming the file. Downloading (`data.download=true`) is torchvision's own (its URL and checksum), and
unpickles nothing.
"""

import functools
import socket
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchvision.datasets import CIFAR10
from torchvision.datasets.utils import download_and_extract_archive

from hyperlab.data.base import Split, TensorDataModule, split_indices
from hyperlab.data.options import CIFAR10DataModuleOptions
from hyperlab.data.safe_pickle import load_data_pickle
from hyperlab.errors import DataError

DOWNLOAD_TIMEOUT_S = 20  # per connection: offline, stop at once rather than hang
FOLDER = CIFAR10.base_folder  # cifar-10-batches-py
TRAIN_FILES = [name for name, _ in CIFAR10.train_list]  # data_batch_1 .. data_batch_5
TEST_FILES = [name for name, _ in CIFAR10.test_list]  # test_batch
META_FILE = CIFAR10.meta["filename"]  # batches.meta
FILES = [*TRAIN_FILES, *TEST_FILES, META_FILE]
NUM_CLASSES, PIXELS = 10, 3 * 32 * 32
IMAGE_SIZE = 32


def plain_keys(content: Any, path: Path) -> dict[str, Any]:
    """A pickled dict with its keys as text (Python 2's files read as latin-1 give text; bytes keys are decoded)."""
    if not isinstance(content, dict):
        raise DataError(f"{path} is refused: it holds a {type(content).__name__}, not a dict of CIFAR-10 data")
    keys = {key.decode("latin1") if isinstance(key, bytes) else key: value for key, value in content.items()}
    if not all(isinstance(key, str) for key in keys):
        raise DataError(f"{path} is refused: its keys are not all text")
    return keys


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file's images (uint8, N x 3 x 32 x 32) and labels, checked to be what CIFAR-10's are."""
    batch = plain_keys(load_data_pickle(path), path)
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != PIXELS:
        shown = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path} is refused: its 'data' must be a uint8 array of N x {PIXELS} pixels, not {shown}")
    if not isinstance(labels, list) or not all(type(label) is int and 0 <= label < NUM_CLASSES for label in labels):
        raise DataError(f"{path} is refused: its 'labels' must be a list of integers from 0 to {NUM_CLASSES - 1}")
    if len(labels) != len(data):
        raise DataError(f"{path} is refused: {len(data)} images but {len(labels)} labels")
    return data.reshape(-1, 3, IMAGE_SIZE, IMAGE_SIZE), np.asarray(labels, dtype=np.int64)


def read_class_names(path: Path) -> list[str]:
    """The ten class names of batches.meta (`label_names`: airplane, automobile, ...)."""
    names = plain_keys(load_data_pickle(path), path).get("label_names")
    if isinstance(names, list):
        names = [name.decode("latin1") if isinstance(name, bytes) else name for name in names]
    if not isinstance(names, list) or len(names) != NUM_CLASSES or not all(isinstance(n, str) and n for n in names):
        raise DataError(f"{path} is refused: its 'label_names' must be a list of {NUM_CLASSES} names")
    return names


def read_splits(folder: Path, val_fraction: float, seed: int) -> dict[str, Any]:
    """The files decoded and split into train / val / test (and the class names). Kept for the rest of the process,
    keyed by the files' path, size and time: a sweep's runs decode them once."""
    files = [folder / name for name in FILES]
    stamp = tuple((str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    return dict(_read_splits(str(folder), val_fraction, seed, stamp))


@functools.lru_cache(maxsize=2)
def _read_splits(folder: str, val_fraction: float, seed: int, stamp: tuple) -> dict[str, Any]:
    train = [read_batch(Path(folder) / name) for name in TRAIN_FILES]
    x_train = torch.from_numpy(np.concatenate([x for x, _ in train]))
    y_train = torch.from_numpy(np.concatenate([y for _, y in train]))
    x_test, y_test = (torch.from_numpy(a) for a in read_batch(Path(folder) / TEST_FILES[0]))
    counts = torch.bincount(y_train)
    fits = int(counts[counts > 0].min()) >= 2 and int(len(y_train) * val_fraction) >= int((counts > 0).sum())
    stratify = y_train if fits else None  # (a set too small to stratify: a plain seeded split)
    index = split_indices(len(y_train), val_fraction, 0, seed, labels=stratify)
    return {
        "train": (x_train[index["train"]], y_train[index["train"]]),
        "val": (x_train[index["val"]], y_train[index["val"]]),
        "test": (x_test, y_test),
        "class_names": read_class_names(Path(folder) / META_FILE),
    }


def random_crop_flip(images: Tensor, padding: int, generator: torch.Generator | None = None) -> Tensor:
    """Each image shifted by a random crop of itself padded with `padding` zeros on every side (torchvision's
    `RandomCrop(size, padding)`), and flipped left-right with probability 1/2, a whole batch at once on its device."""
    n, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    top = torch.randint(0, 2 * padding + 1, (n, 1), device=images.device, generator=generator)
    left = torch.randint(0, 2 * padding + 1, (n, 1), device=images.device, generator=generator)
    flip = torch.rand(n, 1, device=images.device, generator=generator) < 0.5
    rows = top + torch.arange(height, device=images.device)  # (n, height)
    columns = torch.arange(width, device=images.device)
    columns = left + torch.where(flip, columns.flip(0), columns)  # (n, width): a flipped image reads right to left
    batch = torch.arange(n, device=images.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], columns[:, None, :]].permute(0, 3, 1, 2).contiguous()


class CIFAR10DataModule(TensorDataModule):
    """CIFAR-10's 50,000 training images (a seeded, stratified share held out for validation) and 10,000 test
    images, 3 x 32 x 32 floats in [0, 1]; random crops (padding 4) and flips with `augment`."""

    kind = "classification"
    options = CIFAR10DataModuleOptions

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._augmentation: tuple[tuple[int, str] | None, torch.Generator | None] = (None, None)  # (epoch, device)

    @property
    def folder(self) -> Path:
        return Path(self.root) / FOLDER

    def where(self) -> str:
        return (f"data=cifar10 reads {self.folder.resolve()}/ (data_batch_1..5, test_batch, batches.meta): put "
                "torchvision's CIFAR-10 python version there")  # fmt: skip

    def prepare_data(self) -> None:
        try:
            missing = [name for name in FILES if not (self.folder / name).is_file()]
        except OSError as error:  # a folder on the way that can't be read
            raise DataError(f"cannot read {self.folder}: {error.strerror} (see data.root)") from None
        if not missing:
            return
        if not self.download:
            raise DataError(f"{self.where()}, or data.download=true with internet (missing: {', '.join(missing)})")
        previous_timeout = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
        try:  # torchvision's own download (its URL and checksum); nothing is unpickled
            download_and_extract_archive(CIFAR10.url, str(self.root), filename=CIFAR10.filename, md5=CIFAR10.tgz_md5)
        except (RuntimeError, OSError) as error:
            reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
            raise DataError(f"{self.where()} (downloading it failed: {reason})") from None
        finally:
            socket.setdefaulttimeout(previous_timeout)

    def load(self) -> dict[str, Split]:
        splits = read_splits(self.folder, self.val_fraction, self.seed)
        self.class_names = list(splits.pop("class_names"))
        return splits

    def transform(self, x: Tensor, train: bool) -> Tensor:
        images = x.to(torch.float32).div_(255)
        if train and self.augment:
            images = random_crop_flip(images, self.augment_padding, self.augmentation_generator(images.device))
        return images

    def augmentation_generator(self, device: torch.device) -> torch.Generator:
        """Augmentation's own random stream, seeded by (shuffle_seed, epoch), as MNIST's: both training loops draw the
        same crops and flips, and a run resumed at an epoch's start draws what the uninterrupted run drew."""
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        if self._augmentation[0] != (epoch, str(device)):
            generator = torch.Generator(device=device).manual_seed(self.shuffle_seed * 100_003 + epoch)
            self._augmentation = ((epoch, str(device)), generator)
        return self._augmentation[1]

    def state_dict(self) -> dict[str, Any]:
        """What `hyperlab-predict` needs to read a new image as these are: 32 x 32 RGB (plain values)."""
        return {"image_size": IMAGE_SIZE, "channels": 3}
