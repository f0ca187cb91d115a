"""hyperlab-predict brings a drawn digit to the framing of the checkpoint's own training images (issue 23, point 7):
scikit-learn's 8x8 `digits` (optdigits: a 32x32 bitmap the digit's height fills, counted in 4x4 blocks) for a model
of the default experiment, MNIST's (20 of 28 pixels, centred by the centre of mass) for an MNIST one. Which one is
read from plain values in the checkpoint; `box_fraction=` still overrides; unknown data gets MNIST's, with a
warning."""

import io
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import torch
from drawn_digits import STYLES, draw_digit, draw_digits
from helpers import compose_config as compose_train
from omegaconf import OmegaConf
from PIL import Image, ImageDraw
from sklearn.datasets import load_digits

from hyperlab.checkpoints import read_checkpoint, task_from
from hyperlab.config import compose_config
from hyperlab.predict import KNOWN_DATA, MNIST_FRAMING, Framing, framing_for, predict, predict_command, to_model_input
from hyperlab.train import train

DIGITS_FRAMING = KNOWN_DATA["digits"][1]


@pytest.fixture(scope="module")
def digits_checkpoint(tmp_path_factory) -> str:
    """The default experiment (an MLP on scikit-learn's digits) as hyperlab-train trains it: a few seconds."""
    run = tmp_path_factory.mktemp("digits") / "run"
    return train(compose_train(run, "callbacks=default", "logger=none"))["best_checkpoint"]


def predicted(checkpoint: str, images: Path, **options) -> dict[Path, str]:
    """{file: the most likely class} from hyperlab-predict's `predict` (the checkpoint's framing unless overridden)."""
    cfg = {"ckpt_path": checkpoint, "images": str(images), "top_k": 1, "invert": None, "box_fraction": None}
    predictions, skipped = predict(OmegaConf.create({**cfg, **options}))
    assert not skipped
    return {prediction.path: prediction.classes[0][0] for prediction in predictions}


def right(predictions: dict[Path, str], drawn: dict[Path, int]) -> int:
    return sum(predictions[path] == str(digit) for path, digit in drawn.items())


def framed(image: Image.Image, framing: Framing, shape: list[int]) -> np.ndarray:
    grey = np.asarray(image.convert("L"), dtype=np.float32) / 255
    return to_model_input(grey, shape, None, framing)[0, 0].numpy()


# ------------------------------------------------------------------------------------------------ what is read
def test_a_digits_model_reads_drawn_digits_framed_as_its_own_data(digits_checkpoint, tmp_path):
    drawn = draw_digits(tmp_path / "mine")
    predictions = predicted(digits_checkpoint, tmp_path / "mine")
    assert right(predictions, drawn) >= 8, predictions
    # framed as MNIST's digits, as every checkpoint's were before, fewer are read
    as_mnist = classes(digits_checkpoint, [framed(Image.open(path), MNIST_FRAMING, [1, 8, 8]) for path in drawn])
    assert sum(c == digit for c, digit in zip(as_mnist, drawn.values(), strict=True)) < right(predictions, drawn)


def classes(checkpoint: str, frames: list[np.ndarray]) -> list[int]:
    """The checkpoint's most likely class for each of `frames`."""
    task = task_from(read_checkpoint(checkpoint), checkpoint)
    return task.predict_proba(torch.from_numpy(np.stack(frames)).unsqueeze(1)).argmax(1).tolist()


def test_the_command_frames_by_the_checkpoint_unless_box_fraction_is_given(digits_checkpoint, tmp_path):
    drawn = draw_digits(tmp_path / "mine")
    cfg = compose_config("predict", [f"ckpt_path={digits_checkpoint}", f"images={tmp_path / 'mine'}", "top_k=1"])
    assert cfg.box_fraction is None  # the default: the checkpoint's own framing
    printed = io.StringIO()
    with redirect_stdout(printed):
        predict_command(cfg)
    lines = dict(line.split(": ", 1) for line in printed.getvalue().splitlines())
    assert {Path(path): ranked.split(" (")[0] for path, ranked in lines.items()} == predicted(
        digits_checkpoint, tmp_path / "mine"
    )
    assert right(predicted(digits_checkpoint, tmp_path / "mine"), drawn) >= 8


def test_box_fraction_overrides_the_share_of_the_frame_the_ink_fills():
    digit = draw_digit(7, STYLES[0])
    for box_fraction, rows in ((None, 8), (0.5, 4)):  # the 32-pixel bitmap's height: all of it, or 16 pixels
        framing = framing_for(digits_checkpoint_config(), [1, 8, 8], box_fraction, "digits.ckpt")
        assert (framed(digit, framing, [1, 8, 8]) > 0).any(axis=1).sum() == rows
    framing = framing_for({"hyperlab": {}}, [1, 28, 28], 0.5, "plain.ckpt")
    ink_rows = np.nonzero((framed(digit, framing, [1, 28, 28]) > 0.2).any(axis=1))[0]
    assert abs(len(ink_rows) - 14) <= 1  # the longer side: half of 28 pixels


# ------------------------------------------------------------------------- which framing: plain values, looked up
def digits_checkpoint_config(**data) -> dict:
    return {"hyperlab": {"config": {"data": {"_target_": "hyperlab.data.DigitsDataModule", **data}}}}


def mnist_checkpoint_config(dataset) -> dict:
    return {"hyperlab": {"config": {"data": {"_target_": "hyperlab.data.MNISTDataModule", "dataset": dataset}}}}


def test_the_framing_is_looked_up_by_the_datas_name_and_shape(capsys):
    assert framing_for(digits_checkpoint_config(), [1, 8, 8], None, "a.ckpt") == DIGITS_FRAMING
    named = {"hyperlab": {"config": {"data": {"option": "mnist", "dataset": "fashion_mnist"}}}}  # (new files)
    assert framing_for(named, [1, 28, 28], None, "a.ckpt") == KNOWN_DATA["fashion_mnist"][1]
    assert framing_for(mnist_checkpoint_config("mnist"), [1, 28, 28], None, "a.ckpt") == MNIST_FRAMING
    fashion = framing_for(mnist_checkpoint_config("fashion_mnist"), [1, 28, 28], None, "a.ckpt")
    assert fashion == KNOWN_DATA["fashion_mnist"][1]
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "checkpoint",
    [
        {"hyperlab": {}},  # no run config
        {"hyperlab": {"config": {"data": {"_target_": "hyperlab.data.BlobsDataModule"}}}},
        {"hyperlab": {"config": {"data": {"_target_": "os.system", "dataset": "mnist"}}}},  # only ever compared
        {"hyperlab": {"config": {"data": {"option": "os.system", "dataset": "mnist"}}}},  # an option of no conf/data/
        mnist_checkpoint_config(["mnist"]),
        {"hyperlab": {"config": {"data": "digits"}}},
    ],
)
def test_unknown_data_is_framed_as_mnist_with_a_one_line_warning(checkpoint, capsys):
    assert framing_for(checkpoint, [1, 28, 28], None, "odd.ckpt") == MNIST_FRAMING
    warning = capsys.readouterr().err
    assert warning.startswith("warning: odd.ckpt: ") and warning.count("\n") == 1, warning


def test_a_network_that_does_not_take_the_datas_shape_is_framed_as_mnist_with_a_warning(capsys):
    assert framing_for(digits_checkpoint_config(), [1, 28, 28], None, "resized.ckpt") == MNIST_FRAMING
    assert capsys.readouterr().err.startswith("warning: resized.ckpt: ")


# ------------------------------------------------------------------------ the framed digits, against the data's
def test_framed_drawn_digits_look_like_scikit_learns_digits():
    frames = np.stack([framed(draw_digit(digit, style), DIGITS_FRAMING, [1, 8, 8]) for style in STYLES
                       for digit in range(10)])  # fmt: skip
    data = load_digits().images / 16
    counts = frames * 16
    assert np.allclose(counts, counts.round(), atol=1e-4) and counts.min() >= 0 and counts.max() <= 16  # 0..16 of 16
    assert (frames > 0).any(axis=2).all()  # every digit fills the 8 rows, as every one of the data's does
    assert not frames[:, :, [0, 7]].any()  # and stays off the outer columns (20 of the 32 pixels wide at most)
    assert abs(frames.mean() - data.mean()) < 0.08  # about as much ink (0.31 of the frame in the data)


def test_a_datas_digit_printed_large_on_paper_is_framed_back_close_to_itself():
    digits = load_digits()
    similarity = []
    for image in digits.images[::36] / 16:
        large = Image.fromarray(np.round(image * 255).astype(np.uint8)).resize((96, 96), Image.Resampling.BICUBIC)
        paper = Image.fromarray(255 - np.pad(np.asarray(large), 16))  # dark ink on white, a margin around
        similarity.append(np.corrcoef(framed(paper, DIGITS_FRAMING, [1, 8, 8]).ravel(), image.ravel())[0, 1])
    assert np.median(similarity) > 0.8


def test_a_drawn_digit_is_framed_as_mnists_are():
    frame = framed(draw_digit(2, STYLES[3]), MNIST_FRAMING, [1, 28, 28])
    ink_rows, ink_columns = np.nonzero(frame > 0.2)
    assert abs(max(np.ptp(ink_rows), np.ptp(ink_columns)) + 1 - 20) <= 1  # its longer side: 20 of the 28 pixels
    rows, columns = np.indices(frame.shape)
    centre = ((rows * frame).sum() / frame.sum(), (columns * frame).sum() / frame.sum())
    assert np.allclose(centre, (14, 14), atol=0.6)  # its centre of mass where MNIST's are


@pytest.mark.parametrize("framing", [DIGITS_FRAMING, MNIST_FRAMING], ids=["digits", "mnist"])
@pytest.mark.parametrize("ink", ["blank", "dot", "dash", "bar", "photo"])
def test_odd_drawings_are_framed_without_fuss(framing, ink):
    image = Image.new("L", (60, 40), 255)
    draw = ImageDraw.Draw(image)
    if ink == "dot":
        draw.point((30, 20), 0)
    elif ink == "dash":  # much wider than tall
        draw.line((5, 20, 55, 20), 0, width=2)
    elif ink == "bar":  # much taller than wide
        draw.line((30, 2, 30, 38), 0, width=1)
    elif ink == "photo":  # grey paper, noise, a faint digit
        noise = np.random.default_rng(0).normal(180, 20, (40, 60))
        image = Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8))
        ImageDraw.Draw(image).line((20, 5, 40, 5, 25, 35), 90, width=4)
    shape = KNOWN_DATA["digits" if framing is DIGITS_FRAMING else "mnist"][0]
    frame = framed(image, framing, shape)
    assert frame.shape == tuple(shape[1:]) and np.isfinite(frame).all() and 0 <= frame.min() <= frame.max() <= 1
    assert (frame.max() > 0) == (ink != "blank")


# ------------------------------------------------------------------------------------------- an MNIST network
@pytest.mark.slow
def test_an_mnist_cnn_reads_drawn_digits(mnist_root, tmp_path):
    """(Trained on the tests' small MNIST files, whose digits are a font's; with the real files: see the report.)"""
    overrides = ["experiment=mnist_cnn", f"data.root={mnist_root}", "callbacks=default", "logger=none", "threads=1"]
    checkpoint = train(compose_train(tmp_path / "run", *overrides))["best_checkpoint"]
    drawn = draw_digits(tmp_path / "mine")
    predictions = predicted(checkpoint, tmp_path / "mine")
    assert right(predictions, drawn) >= 9, predictions
