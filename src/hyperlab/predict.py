"""`hyperlab-predict ckpt_path=<best.ckpt> images=<file or folder>`: classify your own images (session 2's
"test the model on your own handwriting"); `table=<file.csv or .parquet>`: predict every row of a table.

Each image is brought to the format the model was trained on, the way MNIST itself was made: grey, light ink
on a dark background (inverted when its border is light), the ink cropped, scaled so its longer side fills
`box_fraction` of the frame, and centred by its centre of mass. A file that cannot be read is reported by name
and skipped; the others are still classified.

A table's rows go through the preprocessing the run fitted on its training rows (kept in the checkpoint), and
come out as CSV on standard output: the row's own columns as pandas read them (a missing cell empty, a whole
number in a column with missing cells as `4.0`), then the predicted class and its probability, or the predicted
value in the target's own units. The file is read by `sep` (sniffed), `file_encoding`, `na_values` and `decimal`
given here, not by what the checkpoint says: a checkpoint is data, and never chooses how a file is decoded.
"""

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig
from PIL import Image

from hyperlab.checkpoints import data_state, read_checkpoint, task_from
from hyperlab.config import validate_predict
from hyperlab.data.image_folder import UNREADABLE, image_format, open_image, read_image
from hyperlab.data.preprocessing import Preprocessing
from hyperlab.data.tables import check_values, read_table, settle
from hyperlab.errors import ConfigError, DataError
from hyperlab.options import separator
from hyperlab.tasks import ClassificationTask, Task


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


def to_model_input(grey: np.ndarray, input_shape: list[int], invert: bool | None, box_fraction: float) -> torch.Tensor:
    """A (1, C, H, W) batch in the training format from a grey image of any size."""
    channels, height, width = input_shape
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if invert is None:
        invert = bool(np.median(border) > 0.5)  # light paper: dark ink
    if invert:
        grey, border = 1 - grey, 1 - border
    paper = np.median(border)
    grey = np.clip((grey - paper) / max(grey.max() - paper, 1e-6), 0, 1)  # paper -> 0, the strongest ink -> 1
    ink_rows, ink_columns = np.nonzero(grey > 0.2)
    frame = np.zeros((height, width), dtype=np.float32)
    if len(ink_rows) == 0:  # blank: nothing to centre
        frame = resize(grey, height, width)
    else:
        ink = grey[ink_rows.min() : ink_rows.max() + 1, ink_columns.min() : ink_columns.max() + 1]
        scale = box_fraction * min(height, width) / max(ink.shape)
        ink = resize(ink, max(1, round(ink.shape[0] * scale)), max(1, round(ink.shape[1] * scale)))
        rows, columns = np.indices(ink.shape)
        mass = ink.sum()
        centre_row, centre_column = (rows * ink).sum() / mass, (columns * ink).sum() / mass
        top = int(np.clip(round(height / 2 - centre_row), 0, height - ink.shape[0]))
        left = int(np.clip(round(width / 2 - centre_column), 0, width - ink.shape[1]))
        frame[top : top + ink.shape[0], left : left + ink.shape[1]] = ink
    return torch.from_numpy(frame).expand(channels, height, width).unsqueeze(0).contiguous()


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
    names = list(task.hparams.class_names)
    predictions, skipped = [], []
    for path in image_files(Path(cfg.images)):
        try:
            if folder_format:
                batch = torch.from_numpy(read_image(path, *folder_format)).unsqueeze(0).float().div_(255)
            else:  # MNIST-like digits: centred by the ink, as MNIST was made
                batch = to_model_input(read_grey(path), input_shape, cfg.invert, cfg.box_fraction)
        except UNREADABLE as error:
            skipped.append((path, str(error).splitlines()[0] or type(error).__name__))
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
            names = np.array(task.hparams.class_names, dtype=object)
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


if __name__ == "__main__":  # python -m hyperlab.predict: the command hyperlab-predict
    from hyperlab.cli import predict_main

    predict_main()
