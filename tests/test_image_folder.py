"""Your own images (`data=image_folder`): a folder of PNGs and a JPEG in torchvision's ImageFolder layout, written
by the tests, decoded once into uint8 at `data.image_size`, grey or RGB, with seeded stratified splits; unreadable
files skipped by name and counted; the MLP and the CNN trained on it; class names in the figures' data and in
hyperlab-predict."""

import logging
import sys
from pathlib import Path

import commands
import numpy as np
import pytest
import torch
from helpers import SHAPES, compose_config, draw_shape, write_image_folder
from hydra.utils import instantiate
from PIL import Image

from hyperlab.config import validate
from hyperlab.data.image_folder import read_image
from hyperlab.errors import ConfigError, DataError
from hyperlab.experiment import build
from hyperlab.train import train


def folder_module(tmp_path: Path, folder: Path, *overrides: str):
    cfg = compose_config(tmp_path / "run", "data=image_folder", f"data.path={folder}", *overrides)
    module = instantiate(cfg.data, _convert_="all")
    module.setup("fit")
    return module


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("images") / "shapes", per_class=30)


def test_every_readable_image_is_decoded_once_into_uint8_with_its_class(tmp_path, shapes, caplog):
    with caplog.at_level(logging.WARNING, logger="hyperlab"):
        module = folder_module(tmp_path, shapes, "data.image_size=16", "data.channels=3")
    assert module.class_names == list(SHAPES)  # the sub-folders, sorted
    assert sorted(module.skipped)[0].startswith("circle/notes.txt (cannot identify image file")
    assert sorted(module.skipped)[1].startswith("square/broken.png")
    assert "skipped 2 unreadable file(s) of 92" in caplog.text
    x, y = (torch.cat([module.splits[s][i] for s in ("train", "val", "test")]) for i in (0, 1))
    assert x.dtype == torch.uint8 and x.shape == (90, 3, 16, 16) and torch.bincount(y).tolist() == [30, 30, 30]
    assert module.input_shape == [3, 16, 16]
    first = module.transform(module.splits["train"][0][:1], train=False)
    assert first.dtype == torch.float32 and first.min() >= 0 and first.max() <= 1
    # each image is where its file says: the first training image is one of the folder's, read the same way
    decoded = {
        path.relative_to(shapes): torch.from_numpy(read_image(path, 16, 3))
        for path in shapes.rglob("*")
        if path.suffix in (".png", ".jpg") and path.name != "broken.png"
    }
    assert any(torch.equal(image, module.splits["train"][0][0]) for image in decoded.values())
    grey = folder_module(tmp_path, shapes, "data.image_size=12", "data.channels=1")
    assert grey.splits["train"][0].shape[1:] == (1, 12, 12)


def test_transparent_parts_are_white_paper_and_grey_is_one_channel(tmp_path):
    rng = np.random.default_rng(0)
    image = draw_shape("circle", rng, (20, 20)).convert("RGBA")
    pixels = np.asarray(image).copy()
    pixels[:, :, 3] = 0  # fully transparent
    Image.fromarray(pixels).save(tmp_path / "clear.png")
    assert read_image(tmp_path / "clear.png", 8, 1).tolist() == np.full((1, 8, 8), 255).tolist()
    assert read_image(tmp_path / "clear.png", 8, 3).shape == (3, 8, 8)


def test_the_splits_are_seeded_and_stratified(tmp_path, shapes):
    def split_of(seed: int) -> list[torch.Tensor]:
        module = folder_module(tmp_path, shapes, "data.image_size=8", f"data.seed={seed}")
        return [module.splits[split][0].flatten(1).float().sum(1) for split in ("train", "val", "test")]

    first, again, other = split_of(0), split_of(0), split_of(1)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[1], other[1])
    module = folder_module(tmp_path, shapes, "data.image_size=8")
    for split in ("val", "test"):  # 15% of 90: 13 or 14, as even across the classes as can be
        counts = torch.bincount(module.splits[split][1], minlength=3)
        assert counts.sum() in (13, 14) and counts.max() - counts.min() <= 1, (split, counts)


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_the_mlp_and_the_cnn_train_on_its_shape_and_predict_by_class_name(tmp_path, shapes, model):
    result = train(
        compose_config(tmp_path / "run", "data=image_folder", f"data.path={shapes}", "data.image_size=16",
                       "data.channels=3", f"model={model}", "trainer.max_epochs=15", "callbacks=figures",
                       "data.batch_size=16")
    )  # fmt: skip
    assert result["metrics"]["test/acc"] >= 0.6  # three shapes, chance is 1/3
    checkpoint = torch.load(result["best_checkpoint"], weights_only=True)
    assert checkpoint["hyper_parameters"]["class_names"] == list(SHAPES)
    assert checkpoint["hyper_parameters"]["network"]["input_shape"] == [3, 16, 16]
    assert checkpoint["ImageFolderDataModule"] == {"image_size": 16, "channels": 3}
    assert (tmp_path / "run" / "figures" / "confusion_matrix.png").is_file()
    new = tmp_path / "new"
    new.mkdir()
    rng = np.random.default_rng(7)
    for i in range(12):
        draw_shape(SHAPES[i % 3], rng, (40, 30)).save(new / f"{i:02d}_{SHAPES[i % 3]}.png")
    (new / "not_an_image.png").write_text("text")
    process = commands.run(
        [sys.executable, "-m", "hyperlab", "predict", f"ckpt_path={result['best_checkpoint']}", f"images={new}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert process.returncode == 0, process.stderr[-2000:]
    lines = process.stdout.strip().splitlines()
    assert len(lines) == 12 and "not_an_image.png: skipped, cannot read it as an image" in process.stderr
    right = sum(line.split(": ")[1].split(" (")[0] in line.split(": ")[0] for line in lines)
    assert right >= 6, lines  # the top class, by name, is the file's shape more often than chance


def test_a_folder_that_cannot_make_a_classifier_is_refused_before_training(tmp_path):
    one_class = tmp_path / "one"
    write_image_folder(one_class, per_class=12)
    for shape in SHAPES[1:]:
        for file in (one_class / shape).iterdir():
            file.unlink()
        (one_class / shape).rmdir()
    empty_class = write_image_folder(tmp_path / "empty", per_class=12)
    for file in (empty_class / "triangle").iterdir():
        file.unlink()
    cases = {
        tmp_path / "nowhere": "no folder at .*nowhere \\(data.path: a folder with a sub-folder per class\\)",
        one_class: "needs at least two class folders with images in them; classes \\['circle'\\]",
        empty_class: "without a readable image: \\['triangle'\\]",
    }
    for folder, message in cases.items():
        with pytest.raises(DataError, match=message):
            build(compose_config(tmp_path / "run", "data=image_folder", f"data.path={folder}"))
    refused = {"data.channels=2": "1 \\(grey\\) or 3 \\(RGB\\)", "data.image_size=2": "an integer in \\[4, 1024\\]"}
    for override, message in refused.items():
        with pytest.raises(ConfigError, match=message):
            validate(compose_config(tmp_path / "run", "data=image_folder", f"data.path={one_class}", override))


def test_a_checkpoints_image_format_must_be_plain_values_of_the_shape_training_writes(tmp_path, shapes):
    result = train(compose_config(tmp_path / "run", "data=image_folder", f"data.path={shapes}", "data.image_size=8",
                                  "trainer.max_epochs=1", "logger=none"))  # fmt: skip
    checkpoint = torch.load(result["best_checkpoint"], weights_only=True)
    crafted = [
        ({"image_size": "8", "channels": 1}, "image_size '8'"),  # a size as text
        ({"image_size": 8, "channels": 3}, "(8, 3) does not fit its network [1, 8, 8]"),  # RGB for a grey network
    ]
    for state, problem in crafted:
        checkpoint["ImageFolderDataModule"] = state
        torch.save(checkpoint, tmp_path / "crafted.ckpt")
        process = commands.run(
            [sys.executable, "-m", "hyperlab", "predict", f"ckpt_path={tmp_path / 'crafted.ckpt'}", f"images={shapes}"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert process.returncode == 2 and "Traceback" not in process.stderr
        assert problem in process.stderr.strip().splitlines()[-1], process.stderr


def test_hidden_folders_are_not_classes_and_split_folders_are_refused(tmp_path):
    folder = write_image_folder(tmp_path / "shapes", per_class=12)
    (folder / ".ipynb_checkpoints").mkdir()
    (folder / "circle" / ".ipynb_checkpoints").mkdir()
    draw_shape("circle", np.random.default_rng(0), (20, 20)).save(folder / "circle" / ".ipynb_checkpoints" / "0.png")
    module = folder_module(tmp_path, folder, "data.image_size=8")
    assert module.class_names == list(SHAPES)
    assert sum(len(y) for _, y in module.splits.values()) == 36  # the hidden copy is not an image of the set
    for split in ("train", "test"):  # a data set's own split folders: data.path one level too high
        write_image_folder(tmp_path / "dataset" / split, per_class=12)
    with pytest.raises(DataError, match="every image is two folders down .*point data.path at the folder whose sub-"):
        build(compose_config(tmp_path / "run", "data=image_folder", f"data.path={tmp_path / 'dataset'}"))


def test_sixteen_bit_grey_images_keep_their_shades(tmp_path):
    ramp = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)  # 0 .. 63,000 of 65,535
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    assert Image.open(tmp_path / "ramp.png").mode.startswith("I")
    pixels = read_image(tmp_path / "ramp.png", 8, 1)[0].astype(int)
    assert np.abs(pixels - np.round(ramp / 65535 * 255)).max() <= 1 and pixels.max() > 200
