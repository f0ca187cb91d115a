"""Your own images: a folder in torchvision's `ImageFolder` layout, one sub-folder per class.

    <path>/cat/001.png, <path>/cat/002.jpg, ..., <path>/dog/001.png, ...

torchvision lists the classes (the sub-folders' names, sorted) and their files. Every image is decoded once (grey
or RGB by `channels`, transparent parts as white paper, scaled to `image_size` x `image_size`) into one uint8
tensor, N x C x H x W, the fast path MNIST takes: each batch becomes floats in [0, 1] on the training device. A file
that cannot be read as an image is skipped, by name, and counted: one PIL cannot decode, one that is not a regular
file (a FIFO named `x.png` would wait for a writer forever), and one of more than `MAX_PIXELS` pixels (its declared
size, read before it is decoded: a 300 KB 16-bit PNG can declare 12000 x 12000). A class folder's name is at most
`CLASS_NAME_CHARACTERS` characters. The splits are seeded and stratified by class.

`hyperlab-predict` reads a new image the same way (`read_image`), from the size and channels the checkpoint keeps.
"""

import functools
import logging
import math
import os
import stat
import struct
import warnings
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor
from torchvision.datasets import ImageFolder

from hyperlab.data.base import Split, TensorDataModule, stratified_split
from hyperlab.data.messages import quoted, quoted_list, shortened, unreadable_path
from hyperlab.data.options import CLASS_NAME_CHARACTERS, IMAGE_MODES, IMAGE_SIZES, ImageFolderDataModuleOptions
from hyperlab.errors import DataError

log = logging.getLogger(__name__)

WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "F")  # 16- and 32-bit grey, which PIL's convert("L") would clip
# What PIL raises for a file it cannot decode (NotImplementedError: a format it knows but not that variant of, as
# a DDS file's pixel format), and a file that is not a regular one or has too many pixels (`open_image`)
UNREADABLE = (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError,
              NotImplementedError, EOFError, struct.error)  # fmt: skip
MAX_PIXELS = 40_000_000  # an image of more pixels is not decoded (8000 x 5000; at most about 0.7 GB while decoding)
FILE_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a device", stat.S_IFBLK: "a device", stat.S_IFSOCK: "a socket"}


def regular_file(path: str | Path) -> BinaryIO:
    """The file at `path` opened to read, if it is a regular file; else an OSError saying what it is. Opened without
    waiting (a FIFO's opening would wait for a writer), then looked at."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        kind = stat.S_IFMT(os.fstat(descriptor).st_mode)
        if kind != stat.S_IFREG:
            raise OSError(f"not a regular file: {FILE_KINDS.get(kind, 'not a file')}")
        os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def open_image(path: str | Path, mode: str) -> Image.Image:
    """An image file decoded in `mode` ("L" grey, "RGB"), upright (its EXIF orientation), transparent parts white
    paper; an image of more than `MAX_PIXELS` pixels is refused by its header, before it is decoded."""
    with regular_file(path) as file, opened(file) as image:
        return decoded(image, mode)


def opened(file: BinaryIO) -> Image.Image:
    """The image in `file`, its header read (not its pixels), or a DecompressionBombError if it has more than
    `MAX_PIXELS` pixels."""
    with warnings.catch_warnings():  # (PIL warns of more than 89 M pixels, which are refused here)
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = Image.open(file)
    width, height = image.size
    if width * height > MAX_PIXELS:
        image.close()
        raise Image.DecompressionBombError(f"{width} x {height} pixels, more than the {MAX_PIXELS:,} an image may have")
    return image


def decoded(image: Image.Image, mode: str) -> Image.Image:
    """An opened image's pixels in `mode`, upright, transparent parts white paper (`open_image`)."""
    image = ImageOps.exif_transpose(image)
    if image.mode in WIDE_MODES:  # scaled to 8 bits by its range (16-bit: 0-65535; floats: 0-1)
        pixels = np.array(image, dtype=np.float64)  # (in place below: one float copy of the image at a time)
        top = 1.0 if image.mode == "F" and pixels.max() <= 1 else 65535.0 if pixels.max() > 255 else 255.0
        pixels /= top
        pixels *= 255
        image = Image.fromarray(np.clip(np.round(pixels, out=pixels), 0, 255, out=pixels).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        paper = Image.new("RGBA", image.size, "white")
        paper.alpha_composite(image.convert("RGBA"))
        image = paper
    return image.convert(mode)


def read_image(path: str | Path, image_size: int, channels: int) -> np.ndarray:
    """One image file as uint8 C x H x W (`open_image`), scaled to a square of `image_size` (the aspect ratio is
    not kept, as torchvision's `Resize((size, size))`)."""
    image = open_image(path, IMAGE_MODES[channels]).resize((image_size, image_size), Image.Resampling.BILINEAR)
    pixels = np.array(image, dtype=np.uint8)  # (a copy: PIL's own buffer is read-only)
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


def image_format(state: Any) -> tuple[int, int] | None:
    """(image_size, channels) from an image folder's datamodule state read from a checkpoint, if it is one."""
    if not isinstance(state, dict) or "image_size" not in state:
        return None
    size, channels = state.get("image_size"), state.get("channels")
    sized = type(size) is int and IMAGE_SIZES[0] <= size <= IMAGE_SIZES[1]
    if not sized or type(channels) is not int or channels not in IMAGE_MODES:
        raise DataError(
            f"the image format stored with the model is not valid: image_size {size!r}, channels {channels!r}"
        )
    return size, channels


class VisibleImageFolder(ImageFolder):
    """torchvision's ImageFolder, whose classes are the visible sub-folders only (not `.ipynb_checkpoints`)."""

    def find_classes(self, directory: str | Path) -> tuple[list[str], dict[str, int]]:
        classes, _ = super().find_classes(directory)
        visible = [name for name in classes if not name.startswith(".")]
        return visible, {name: i for i, name in enumerate(visible)}


def hidden(file: Path, root: str) -> bool:
    """A file or folder under `root` whose name starts with a dot (a notebook's checkpoints, a Mac's .DS_Store)."""
    return any(part.startswith(".") for part in file.relative_to(root).parts)


def folder_stamp(path: Path) -> tuple[tuple[str, int, int], ...]:
    """Every file of the folder tree with its size and time: what the decoded images depend on."""
    files = sorted(p for p in path.rglob("*") if p.is_file())
    return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)


def decode_folder(path: Path, image_size: int, channels: int) -> tuple[Tensor, Tensor, list[str], list[str]]:
    """The folder's images (uint8, N x C x H x W), their class indices, the class names, and the files skipped.
    Kept for the rest of the process, keyed by the files' names, sizes and times: a sweep's runs decode them once."""
    return _decode_folder(str(path), image_size, channels, folder_stamp(path))


@functools.lru_cache(maxsize=2)
def _decode_folder(path: str, image_size: int, channels: int, stamp: tuple) -> tuple:
    try:  # every visible file: one that is not an image is skipped by name below, not silently ignored
        folder = VisibleImageFolder(path, is_valid_file=lambda file: not hidden(Path(file), path), allow_empty=True)
    except (FileNotFoundError, OSError) as error:
        raise DataError(f"{path} is not a folder of class folders (data.path; torchvision's ImageFolder layout "
                        f"<path>/<class>/<image>): {shortened(error)}") from None  # fmt: skip
    long = [name for name in folder.classes if len(name) > CLASS_NAME_CHARACTERS]
    if long:
        raise DataError(f"{path}: the class folder {quoted(long[0])} is refused: a class name is at most "
                        f"{CLASS_NAME_CHARACTERS} characters")  # fmt: skip
    deep = [file for file, _ in folder.samples if len(Path(file).relative_to(path).parts) > 2]
    if folder.samples and len(deep) == len(folder.samples):  # e.g. <path>/train/cat/1.png: split folders
        example = Path(deep[0]).relative_to(path)
        raise DataError(f"{path}: every image is two folders down ({example}): point data.path at the folder whose "
                        f"sub-folders are the classes, e.g. data.path={Path(path) / example.parts[0]}")  # fmt: skip
    images, labels, skipped = [], [], []
    for file, label in folder.samples:
        try:
            images.append(read_image(file, image_size, channels))
            labels.append(label)
        except UNREADABLE as error:
            skipped.append(f"{shortened(Path(file).relative_to(path))} ({unreadable_because(error)})")
    x = torch.from_numpy(np.stack(images)) if images else torch.empty(0, channels, image_size, image_size).byte()
    return x, torch.tensor(labels, dtype=torch.long), list(folder.classes), skipped


def unreadable_because(error: BaseException) -> str:
    """Why an image file is skipped, in one short line: what the error says, or its kind."""
    return shortened((str(error).strip().splitlines() or [""])[0] or type(error).__name__)


class ImageFolderDataModule(TensorDataModule):
    """The images of a folder with a sub-folder per class, as C x image_size x image_size floats in [0, 1];
    seeded, stratified train/val/test splits."""

    kind = "classification"
    options = ImageFolderDataModuleOptions

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.path = Path(self.path)
        self.skipped: list[str] = []  # the files that could not be read as images, with why

    def load(self) -> dict[str, Split]:
        if not self.path.is_dir():
            why = unreadable_path(self.path)  # (a symlink loop: resolve() would raise)
            raise DataError(f"no folder at {self.path.absolute()}{f' ({why})' if why else ''} (data.path: a folder "
                            "with a sub-folder per class)")  # fmt: skip
        x, y, self.class_names, self.skipped = decode_folder(self.path, self.image_size, self.channels)
        for reason in self.skipped[:10]:
            log.warning(f"skipped {reason}: not an image it can read")
        if self.skipped:
            log.warning(
                f"skipped {len(self.skipped)} unreadable file(s) of {len(self.skipped) + len(y)} in {self.path}"
            )
        counts = torch.bincount(y, minlength=len(self.class_names)) if len(y) else torch.zeros(0)
        empty = [name for name, count in zip(self.class_names, counts.tolist(), strict=False) if count == 0]
        if len(self.class_names) < 2 or empty:
            raise DataError(f"{self.path}: a classifier needs at least two class folders with images in them; "
                            f"classes {quoted_list(self.class_names)}, without a readable image: "
                            f"{quoted_list(empty)}")  # fmt: skip
        least = math.ceil(1 / min(self.val_fraction, self.test_fraction))
        if len(y) < max(10, least):
            raise DataError(f"{self.path}: {len(y)} readable images, too few to split into train, validation and "
                            f"test (at least {max(10, least)})")  # fmt: skip
        index = stratified_split(y, len(y), self.val_fraction, self.test_fraction, self.seed, self.folds, self.fold)
        sizes = "/".join(str(len(i)) for i in index.values())
        log.info(f"{len(y)} images of {len(self.class_names)} classes {self.class_names[:10]} (train/val/test {sizes}),"
                 f" {self.channels}x{self.image_size}x{self.image_size}")  # fmt: skip
        return {split: (x[i], y[i]) for split, i in index.items()}

    def transform(self, x: Tensor, train: bool) -> Tensor:
        return x.to(torch.float32).div_(255)

    def state_dict(self) -> dict[str, Any]:
        """What `hyperlab-predict` needs to read a new image as training read these: plain values."""
        return {"image_size": self.image_size, "channels": self.channels}
