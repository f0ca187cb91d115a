"""`hyperlab-predict ckpt_path=<best.ckpt> images=<file or folder>`: classify your own images (session 2's
"test the model on your own handwriting"); `table=<file.csv or .parquet>`: predict every row of a table.

Each image is brought to the format of the checkpoint's own training images, the way that data set was made: grey,
light ink on a dark background (inverted when its border is light), the ink cropped and framed as that data frames
its digits (`KNOWN_DATA`):

- MNIST: strokes as thick as MNIST's, the ink scaled so its longer side fills 20 of the 28 pixels, centred by its
  centre of mass (LeCun et al.'s preprocessing);
- scikit-learn's 8x8 `digits` (UCI optdigits): the digit as a black-and-white 32x32 bitmap, its height filling the
  32 pixels, at most 20 wide, with optdigits' thick strokes, then its ink counted in 4x4 blocks (values 0..16).

Which data a checkpoint was trained on is read from it as plain values (its data's class name and data set name,
and its network's input shape) and looked up in that table: nothing read from a checkpoint picks code by name.
`box_fraction=<share>` overrides the share of the frame the ink fills. A checkpoint whose data is not in the table
gets MNIST's framing, with a one-line warning. A file that cannot be read is reported by name and skipped; the
others are still classified.

A table's rows go through the preprocessing the run fitted on its training rows (kept in the checkpoint), and
come out as CSV on standard output: the row's own columns as pandas read them (a missing cell empty, a whole
number in a column with missing cells as `4.0`), then the predicted class and its probability, or the predicted
value in the target's own units. The file is read by `sep` (sniffed), `file_encoding`, `na_values` and `decimal`
given here, not by what the checkpoint says: a checkpoint is data, and never chooses how a file is decoded. A class
name from the checkpoint that a spreadsheet would take for a formula (`=1+1`, `@SUM(...)`, `+`, `-`, a tab or a
carriage return first) is written with a `'` before it, as spreadsheet exporters write such cells (`spreadsheet_text`).
"""

import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig
from PIL import Image, ImageFilter

from hyperlab.checkpoints import data_state, read_checkpoint, stored_config, task_from
from hyperlab.classes import stored_target
from hyperlab.config import validate_predict
from hyperlab.data.image_folder import UNREADABLE, image_format, open_image, read_image, unreadable_because
from hyperlab.data.preprocessing import Preprocessing
from hyperlab.data.tables import check_values, read_table, settle
from hyperlab.errors import ConfigError, DataError
from hyperlab.options import separator
from hyperlab.spreadsheet import spreadsheet_text
from hyperlab.tasks import ClassificationTask, Task


@dataclass(frozen=True)
class Framing:
    """How a data set's images hold their digit: what a drawn image is brought to before the model sees it."""

    box: tuple[float, float]  # (height, width): the shares of the frame the ink's bounding box fits in
    fill_height: bool  # True: the ink's height fills the box's, its width in proportion but at most the box's
    centre: str  # "mass": the ink's centre of mass at the frame's centre; "box": its bounding box's centre
    stroke: float | None  # strokes made this share of the ink's height wide; None: kept as drawn
    bitmap: int = 1  # > 1: drawn black-and-white at this many times the frame's size, then counted in blocks


# MNIST (LeCun et al.): the ink's longer side scaled to 20 of the 28 pixels, its centre of mass in the middle;
# its strokes 0.15 of the digit's height wide (the median over its training images)
MNIST_FRAMING = Framing(box=(20 / 28, 20 / 28), fill_height=False, centre="mass", stroke=0.15)
# What each data set's images look like: (the network input shape its images come in, their framing).
KNOWN_DATA: dict[str, tuple[list[int], Framing]] = {
    "mnist": ([1, 28, 28], MNIST_FRAMING),
    # Fashion-MNIST: each item trimmed, its longer side scaled to the whole 28 pixels and centred
    "fashion_mnist": ([1, 28, 28], Framing(box=(1.0, 1.0), fill_height=False, centre="box", stroke=None)),
    # scikit-learn's digits (UCI optdigits, NIST's preprocessing): 32x32 bitmaps counted in 4x4 blocks. Each of the
    # 1,797 spans all 8 rows, nearly all of them columns 1..6 (narrow 1s and 7s fewer): the height fills the 32
    # pixels, the width at most 20 of them, centred. Thick strokes: about 0.2 of the height (measured on them).
    "digits": ([1, 8, 8], Framing(box=(1.0, 20 / 32), fill_height=True, centre="box", stroke=0.2, bitmap=4)),
}
# A checkpoint's data by its class's name (its data option's `_target_`'s) and its `data.dataset` (None: it has none)
DATA_NAMES: dict[tuple[str, str | None], str] = {
    ("DigitsDataModule", None): "digits",
    ("MNISTDataModule", "mnist"): "mnist",
    ("MNISTDataModule", "fashion_mnist"): "fashion_mnist",
}


@dataclass
class Prediction:
    path: Path
    classes: list[tuple[str, float]]  # (class name, probability), most likely first


def classifier(task: Task, ckpt_path: str | Path) -> ClassificationTask:
    """The task a checkpoint rebuilt, if it is a classifier."""
    if not isinstance(task, ClassificationTask):
        raise DataError(f"{ckpt_path} is a {task.kind} model, not a classifier")
    return task


def read_grey(path: Path) -> np.ndarray:
    """The image as grey values in [0, 1]; transparent parts count as white paper."""
    return np.asarray(open_image(path, "L"), dtype=np.float32) / 255


def data_name(checkpoint: dict[str, Any]) -> str | None:
    """The name in `KNOWN_DATA` of the data a checkpoint was trained on, None if it is not one of them. The stored
    strings are only compared with `DATA_NAMES`' keys: never imported, never called."""
    data = stored_config(checkpoint).get("data")
    if not isinstance(data, dict):
        return None
    target, dataset = stored_target("data", data), data.get("dataset")
    if not isinstance(target, str) or not isinstance(dataset, str | None):
        return None
    return DATA_NAMES.get((target.rsplit(".", 1)[-1], dataset))


def framing_for(
    checkpoint: dict[str, Any], input_shape: list[int], box_fraction: float | None, source: str | Path
) -> Framing:
    """How the checkpoint's training images frame their digits. `box_fraction` (a number) overrides the share of
    the frame the ink's box fills: its height's share, the width's in proportion (MNIST's box is square: the ink's
    longer side). Data not in `KNOWN_DATA`: MNIST's framing, and a one-line warning on standard error."""
    name = data_name(checkpoint)
    shape, framing = KNOWN_DATA.get(name, (None, None)) if name else (None, None)
    if framing is None or shape != input_shape:  # (a network of another input shape never saw that data's images)
        framing = MNIST_FRAMING
        trained_on = f"{name or 'data of no known name'}, network input {input_shape}"
        print(f"warning: {source}: hyperlab does not know how its training images ({trained_on}) frame their "
              "digits: each image is framed as MNIST's are", file=sys.stderr)  # fmt: skip
    if box_fraction is None:
        return framing
    height, width = framing.box
    return replace(framing, box=(box_fraction, box_fraction * width / height))


def to_model_input(grey: np.ndarray, input_shape: list[int], invert: bool | None, framing: Framing) -> torch.Tensor:
    """A (1, C, H, W) batch in the training format from a grey image of any size."""
    channels, height, width = input_shape
    grey = ink_values(grey, invert)
    ink_rows, ink_columns = np.nonzero(grey > 0.2)
    if len(ink_rows) == 0:  # blank: nothing to frame
        frame = resize(grey, height, width)
    else:
        ink = grey[ink_rows.min() : ink_rows.max() + 1, ink_columns.min() : ink_columns.max() + 1]
        frame = place(ink, height, width, framing)
    return torch.from_numpy(frame).expand(channels, height, width).unsqueeze(0).contiguous()


def ink_values(grey: np.ndarray, invert: bool | None) -> np.ndarray:
    """The image as ink: paper 0, the strongest ink 1 (light ink on dark, as the data sets store digits)."""
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if invert is None:
        invert = bool(np.median(border) > 0.5)  # light paper: dark ink
    if invert:
        grey, border = 1 - grey, 1 - border
    paper = np.median(border)
    return np.clip((grey - paper) / max(grey.max() - paper, 1e-6), 0, 1)


def place(ink: np.ndarray, height: int, width: int, framing: Framing) -> np.ndarray:
    """The cropped ink (paper 0 .. ink 1) framed in a `height` x `width` frame as `framing` says."""
    n = framing.bitmap
    if framing.stroke is not None:
        ink = restroke(ink, framing.stroke)
    ink = scale_into_box(ink, height * n, width * n, framing)
    if n > 1:  # a black-and-white bitmap, as optdigits' 32x32 ones
        ink = (ink > 0.5).astype(np.float32)
    frame = centred(ink, height * n, width * n, framing.centre)
    if n > 1:  # its ink counted in n x n blocks: optdigits' 4x4 counts 0..16, as shares
        frame = frame.reshape(height, n, width, n).mean(axis=(1, 3))
    return frame


def scale_into_box(ink: np.ndarray, height: int, width: int, framing: Framing) -> np.ndarray:
    """The ink scaled into `framing.box` of a `height` x `width` frame."""
    box_height, box_width = framing.box[0] * height, framing.box[1] * width
    scale = box_height / ink.shape[0]
    if not framing.fill_height:  # the ink's proportions kept, its longer side filling the box
        scale = min(scale, box_width / ink.shape[1])
    new_width = min(ink.shape[1] * scale, box_width)  # (fill_height: a wide digit is narrowed to the box)
    return resize(ink, max(1, round(ink.shape[0] * scale)), max(1, round(new_width)))


def centred(ink: np.ndarray, height: int, width: int, centre: str) -> np.ndarray:
    """A `height` x `width` frame with the ink pasted at its middle: its centre of mass at pixel (height / 2,
    width / 2), where MNIST's are (14.0, 14.0 on average), or its bounding box in the middle."""
    ink = ink[:height, :width]
    if centre == "mass":
        rows, columns = np.indices(ink.shape)
        mass = max(float(ink.sum()), 1e-6)
        top, left = height / 2 - (rows * ink).sum() / mass, width / 2 - (columns * ink).sum() / mass
    else:
        top, left = (height - ink.shape[0]) / 2, (width - ink.shape[1]) / 2
    top = int(np.clip(round(top), 0, height - ink.shape[0]))
    left = int(np.clip(round(left), 0, width - ink.shape[1]))
    frame = np.zeros((height, width), dtype=np.float32)
    frame[top : top + ink.shape[0], left : left + ink.shape[1]] = ink
    return frame


def restroke(ink: np.ndarray, stroke: float, size: int = 96) -> np.ndarray:
    """The ink, at most `size` pixels on its longer side, its strokes thickened or thinned to about `stroke` of its
    height, cropped again. (A pen's line, a font's glyph and a photo's digit differ most in this.)"""
    if max(ink.shape) > size:
        scale = size / max(ink.shape)
        ink = resize(ink, max(1, round(ink.shape[0] * scale)), max(1, round(ink.shape[1] * scale)))
    solid = ink > 0.5
    if not solid.any():
        return ink
    radius = round((stroke * ink.shape[0] - stroke_width(solid)) / 2)
    if radius == 0:
        return ink
    padded = Image.fromarray(np.round(np.pad(ink, abs(radius) + 1) * 255).astype(np.uint8))
    grow_or_shrink = ImageFilter.MaxFilter if radius > 0 else ImageFilter.MinFilter
    changed = np.asarray(padded.filter(grow_or_shrink(2 * abs(radius) + 1)), dtype=np.float32) / 255
    if not (changed > 0.5).any():  # thinned away: keep it as it was
        return ink
    rows, columns = np.nonzero(changed > 0.2)
    return changed[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]


def stroke_width(solid: np.ndarray) -> float:
    """A stroke's width in pixels: the median over the ink's pixels of the shorter of the runs of ink across them,
    along their row and along their column."""
    return float(np.median(np.minimum(run_lengths(solid), run_lengths(solid.T).T)[solid]))


def run_lengths(solid: np.ndarray) -> np.ndarray:
    """For each pixel, the length of the run of ink along its row that it is in (0 off the ink)."""
    line = np.pad(solid, ((0, 0), (1, 0))).ravel()  # a blank pixel before each row: no run spans two rows
    starts = line & ~np.concatenate([[False], line[:-1]])
    run = np.cumsum(starts) * line  # each ink pixel's run, numbered from 1; 0 off the ink
    lengths = np.bincount(run)[run] * line
    return lengths.reshape(solid.shape[0], solid.shape[1] + 1)[:, 1:]


def resize(grey: np.ndarray, height: int, width: int) -> np.ndarray:
    image = Image.fromarray(np.round(grey * 255).astype(np.uint8))
    return np.asarray(image.resize((width, height), Image.Resampling.LANCZOS), dtype=np.float32) / 255


def image_files(images: Path) -> list[Path]:
    if images.is_dir():
        return sorted(p for p in images.iterdir() if p.is_file() and not p.name.startswith("."))
    if images.is_file():
        return [images]
    raise DataError(f"no image file or folder at {images}")


def predict(cfg: DictConfig) -> tuple[list[Prediction], list[tuple[Path, str]]]:
    """Classify every image of `cfg.images`; returns the predictions and the (file, reason) pairs skipped."""
    checkpoint = read_checkpoint(cfg.ckpt_path)
    task = classifier(task_from(checkpoint, cfg.ckpt_path), cfg.ckpt_path)
    input_shape = list(task.hparams.network["input_shape"])
    if len(input_shape) != 3:
        raise ConfigError(f"this checkpoint's model takes inputs of shape {input_shape}, not images (use table=...)")
    folder_format = image_format(data_state(checkpoint))  # trained on an image folder: read as it read them
    if folder_format and [folder_format[1], folder_format[0], folder_format[0]] != input_shape:
        raise DataError(f"{cfg.ckpt_path}: its image format {folder_format} does not fit its network {input_shape}")
    framing = None if folder_format else framing_for(checkpoint, input_shape, cfg.box_fraction, cfg.ckpt_path)
    names = list(task.hparams.class_names)
    predictions, skipped = [], []
    for path in image_files(Path(cfg.images)):
        try:
            if folder_format:
                batch = torch.from_numpy(read_image(path, *folder_format)).unsqueeze(0).float().div_(255)
            else:  # a drawn digit: framed as the checkpoint's training images frame theirs
                batch = to_model_input(read_grey(path), input_shape, cfg.invert, framing)
        except UNREADABLE as error:
            skipped.append((path, unreadable_because(error)))
            continue
        probabilities = task.predict_proba(batch)[0]
        top = probabilities.topk(min(cfg.top_k, len(names)))
        ranked = [(names[i], p) for p, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)]
        predictions.append(Prediction(path, ranked))
    return predictions, skipped


def predict_table(cfg: DictConfig) -> pd.DataFrame:
    """Every row of the table file `cfg.table` (CSV or Parquet, read with `cfg.sep`, `cfg.file_encoding`,
    `cfg.na_values` and `cfg.decimal`) with the model's prediction added."""
    ckpt_path, table = Path(cfg.ckpt_path), Path(cfg.table)
    checkpoint = read_checkpoint(ckpt_path)
    task = task_from(checkpoint, ckpt_path)
    state = data_state(checkpoint)
    if "columns" not in state:
        raise ConfigError(f"{ckpt_path} was not trained on a table: use images=...")
    rows = read_table(table, separator(cfg.sep), cfg.file_encoding, list(cfg.na_values), cfg.decimal)
    features = settle(rows[[name for name in state["columns"] if name in rows]], table)
    check_values(features, table, state)
    with torch.no_grad():
        x = Preprocessing(state).transform(features)
        expected = list(task.hparams.network["input_shape"])
        if list(x.shape[1:]) != expected:
            raise DataError(
                f"{ckpt_path}: its table preprocessing gives {x.shape[1]} inputs, its network takes {expected}"
            )
        if isinstance(task, ClassificationTask):
            probabilities = task.predict_proba(x)
            best = probabilities.max(dim=1)
            names = np.array([spreadsheet_text(name) for name in task.hparams.class_names], dtype=object)
            rows["predicted"] = names[best.indices.numpy()]
            rows["probability"] = np.round(best.values.numpy(), 4)
        else:  # a RegressionTask
            rows["predicted"] = [f"{v:.6g}" for v in task.predict_values(x)[:, 0].tolist()]
    return rows


def predict_command(cfg: DictConfig) -> None:
    """hyperlab-predict: the predictions on standard output (a table's as CSV), what was skipped on standard error."""
    validate_predict(cfg)
    if cfg.table is not None:
        predict_table(cfg).to_csv(sys.stdout, index=False, lineterminator="\n")
        return
    predictions, skipped = predict(cfg)
    for prediction in predictions:
        ranked = ", ".join(f"{name} ({probability:.1%})" for name, probability in prediction.classes)
        print(f"{prediction.path}: {ranked}")
    for path, reason in skipped:
        print(f"{path}: skipped, cannot read it as an image ({reason})", file=sys.stderr)
    if not predictions:
        found = f"none of its {len(skipped)} files is an image it can read" if skipped else "it holds no files"
        raise DataError(f"nothing to classify in {cfg.images}: {found}")
