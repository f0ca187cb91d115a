"""MNIST / Fashion-MNIST: the official file format parsed for real (small files the tests write), the offline
and download paths, short MLP and CNN trainings with every figure, and predicting drawn images."""

import gzip
import hashlib
import http.server
import io
import struct
import sys
import threading
import zlib
from pathlib import Path

import commands
import numpy as np
import pytest
import torch
from helpers import compose_config, read_events
from hydra.utils import instantiate
from PIL import Image, ImageDraw, ImageFont
from torchvision.datasets import MNIST, FashionMNIST

from hyperlab.data import MNISTDataModule
from hyperlab.data.augment import random_affine
from hyperlab.errors import DataError
from hyperlab.train import train

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
FIGURES = ("confusion_matrix", "confused_pairs", "predictions", "errors", "first_layer")


@pytest.fixture(scope="module")
def data_root(mnist_root) -> Path:
    return mnist_root


def mnist_module(tmp_path, *overrides):
    module = instantiate(compose_config(tmp_path / "run", "experiment=mnist_mlp", *overrides).data)
    module.prepare_data()
    module.setup("fit")
    return module


def test_the_official_files_are_parsed_and_split(tmp_path, data_root):
    module = mnist_module(tmp_path, f"data.root={data_root}")
    sizes = {split: len(y) for split, (_, y) in module.splits.items()}
    assert sizes == {"train": 540, "val": 60, "test": 100}
    assert torch.bincount(module.splits["val"][1]).tolist() == [6] * 10  # stratified
    written = np.fromfile(data_root / "MNIST/raw/t10k-images-idx3-ubyte", np.uint8, offset=16).reshape(-1, 28, 28)
    assert torch.equal(module.splits["test"][0], torch.from_numpy(written))
    labels = np.fromfile(data_root / "MNIST/raw/t10k-labels-idx1-ubyte", np.uint8, offset=8)
    assert module.splits["test"][1].tolist() == labels.tolist()
    assert module.input_shape == [1, 28, 28]
    assert module.class_names == [str(digit) for digit in range(10)]
    batch = module.transform(module.splits["train"][0][:8], train=False)
    assert batch.dtype == torch.float32 and batch.shape == (8, 1, 28, 28) and 0 <= batch.min() <= batch.max() <= 1


def test_fashion_mnist_is_one_override_away(tmp_path, data_root):
    module = mnist_module(tmp_path, f"data.root={data_root}", "data=fashion_mnist")
    assert module.class_names == FashionMNIST.classes
    written = np.fromfile(data_root / "FashionMNIST/raw/t10k-images-idx3-ubyte", np.uint8, offset=16)
    assert torch.equal(module.splits["test"][0].flatten(), torch.from_numpy(written))


def test_the_validation_split_follows_the_data_seed(tmp_path, data_root):
    first = mnist_module(tmp_path, f"data.root={data_root}").splits["val"][0]
    again = mnist_module(tmp_path, f"data.root={data_root}", "seed=5").splits["val"][0]  # the run's seed
    other = mnist_module(tmp_path, f"data.root={data_root}", "data.seed=1").splits["val"][0]
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_missing_files_without_download_name_the_folder_and_files(tmp_path):
    with pytest.raises(DataError) as error:
        mnist_module(tmp_path, f"data.root={tmp_path / 'empty'}", "data.download=false")
    message = str(error.value)
    assert str((tmp_path / "empty" / "MNIST" / "raw").resolve()) in message
    assert "train-images-idx3-ubyte" in message and "t10k-labels-idx1-ubyte" in message
    assert "data.download=true" in message


def test_offline_download_stops_at_once_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])  # nothing listens there: offline
    with pytest.raises(DataError) as error:
        mnist_module(tmp_path, f"data.root={tmp_path / 'empty'}", "data.download=true")
    message = str(error.value)
    assert "MNIST files not found in" in message and "downloading them failed" in message
    assert "train-labels-idx1-ubyte" in message and "data.root" in message


def test_download_fetches_the_missing_files(tmp_path, data_root, monkeypatch):
    """The real download path (torchvision's, with our timeout) against a local server of gzipped IDX files."""
    served = tmp_path / "served"
    served.mkdir()
    resources = []
    for name in FILES:
        packed = gzip.compress((data_root / "MNIST" / "raw" / name).read_bytes())
        (served / f"{name}.gz").write_bytes(packed)
        resources.append((f"{name}.gz", hashlib.md5(packed).hexdigest()))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(MNIST, "mirrors", [f"http://127.0.0.1:{server.server_port}/"])
        monkeypatch.setattr(MNIST, "resources", resources)
        module = mnist_module(tmp_path, f"data.root={tmp_path / 'fresh'}", "data.download=true")
    finally:
        server.shutdown()
    assert (tmp_path / "fresh" / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    assert sum(len(y) for _, y in module.splits.values()) == 700


def test_augmentation_is_one_switch(tmp_path, data_root):
    module = mnist_module(tmp_path, f"data.root={data_root}", "data.augment=true")
    stored = module.splits["train"][0][:16]
    torch.manual_seed(0)
    augmented = module.transform(stored, train=True)
    assert augmented.shape == (16, 1, 28, 28)
    assert not torch.equal(augmented, module.transform(stored, train=False))  # training batches only
    assert torch.equal(module.transform(stored, train=False), stored.unsqueeze(1) / 255)


def test_random_affine_rotates_and_shifts_each_image_differently():
    images = torch.zeros(2, 1, 28, 28)
    images[:, :, 10:18, 10:18] = 1
    assert torch.allclose(random_affine(images, degrees=0, translate=0), images, atol=1e-5)
    torch.manual_seed(0)
    moved = random_affine(images, degrees=30, translate=0.2)
    assert not torch.allclose(moved[0], moved[1])
    assert moved.sum().item() == pytest.approx(images.sum().item(), rel=0.3)  # the square moved, it did not vanish


@pytest.fixture(scope="module")
def trained_mlp(tmp_path_factory, data_root):
    run = tmp_path_factory.mktemp("mlp") / "run"
    return train(compose_config(run, "experiment=mnist_mlp", f"data.root={data_root}", "trainer.max_epochs=8"))


def test_a_short_mlp_training_learns_and_draws_every_figure(trained_mlp):
    assert trained_mlp["metrics"]["test/acc"] >= 0.9
    run = Path(trained_mlp["run_dir"])
    images = read_events(run).Tags()["images"]
    for name in FIGURES:
        assert (run / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert f"figures/{name}" in images


@pytest.mark.slow
def test_a_short_cnn_training_learns_and_draws_its_filters(tmp_path, data_root):
    small = ["model.channels=[8,16]", "model.hidden=32", "model.dropout=0.1"]
    overrides = ["trainer.max_epochs=8", "data.batch_size=32", *small]
    result = train(compose_config(tmp_path / "run", "experiment=mnist_cnn", f"data.root={data_root}", *overrides))
    assert result["metrics"]["test/acc"] >= 0.9
    run = tmp_path / "run"
    assert all((run / "figures" / f"{name}.png").is_file() for name in FIGURES)
    task = torch.load(result["best_checkpoint"], weights_only=True)
    assert task["state_dict"]["net.features.conv1.weight"].shape == (8, 1, 3, 3)


def draw(path: Path, digit: int, size: tuple[int, int], ink, paper, mode: str = "RGB") -> None:
    """A digit as a user might draw it: any size, any colours."""
    image = Image.new(mode, size, paper)
    font = ImageFont.load_default(size=int(size[1] * 0.6))
    ImageDraw.Draw(image).text((size[0] * 0.3, size[1] * 0.15), str(digit), fill=ink, font=font)
    image.save(path)


def test_predict_classifies_drawn_images_and_skips_unreadable_ones(trained_mlp, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    draw(mine / "three.png", 3, (150, 180), ink=(20, 20, 140), paper="white")  # dark blue on white, big
    draw(mine / "seven.png", 7, (40, 40), ink=230, paper=10, mode="L")  # light on dark, small, grey
    draw(mine / "four.png", 4, (90, 120), ink=(0, 0, 0, 255), paper=(0, 0, 0, 0), mode="RGBA")  # transparent
    (mine / "notes.png").write_bytes(b"this is not an image")
    write_bomb(mine / "bomb.png")
    result = commands.run(
        [sys.executable, "-m", "hyperlab", "predict", f"ckpt_path={trained_mlp['best_checkpoint']}", f"images={mine}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(": ", 1) for line in result.stdout.strip().splitlines())
    assert set(lines) == {str(mine / name) for name in ("three.png", "seven.png", "four.png")}
    assert lines[str(mine / "three.png")].startswith("3 (")
    assert lines[str(mine / "seven.png")].startswith("7 (")
    assert lines[str(mine / "four.png")].startswith("4 (")
    assert all(line.count("%") == 3 for line in lines.values())  # top 3 with probabilities
    assert f"{mine / 'notes.png'}: skipped" in result.stderr
    assert f"{mine / 'bomb.png'}: skipped, cannot read it as an image (Image size (400000000 pixels) exceeds" in (
        result.stderr
    )


def write_bomb(path: Path) -> None:
    """A PNG of a few bytes whose header claims 20000 x 20000 pixels (a decompression bomb)."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    start = data.index(b"IHDR")
    data[start + 4 : start + 12] = struct.pack(">II", 20000, 20000)
    data[start + 17 : start + 21] = struct.pack(">I", zlib.crc32(bytes(data[start : start + 17])))
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("contents", ["nothing", "no image"])
def test_predict_with_nothing_to_classify_says_so_in_one_line(trained_mlp, tmp_path, contents):
    folder = tmp_path / "mine"
    folder.mkdir()
    if contents == "no image":
        (folder / "notes.txt").write_text("hello")
    result = commands.run(
        [sys.executable, "-m", "hyperlab", "predict", f"ckpt_path={trained_mlp['best_checkpoint']}",
         f"images={folder}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2
    expected = "none of its 1 files is an image it can read" if contents == "no image" else "it holds no files"
    assert result.stderr.strip().splitlines()[-1] == f"error: nothing to classify in {folder}: {expected}"


def test_an_unreadable_data_folder_is_refused_in_one_line(mnist_root, monkeypatch):
    """(As root, permissions don't stop reading: the refusal of the file system is what the test makes.)"""
    module = MNISTDataModule(dataset="mnist", root=str(mnist_root), download=False, val_fraction=0.1, classes=None,
                             augment=False, augment_degrees=10.0, augment_translate=0.1, batch_size=64,
                             eval_batch_size=1000, batches_per_step=8, seed=0, shuffle_seed=0)  # fmt: skip

    def refused(path: Path) -> bool:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(Path, "is_file", refused)
    with pytest.raises(DataError, match="cannot read .*MNIST/raw: Permission denied \\(see data.root\\)"):
        module.prepare_data()


def test_predict_refuses_a_missing_checkpoint_in_one_line(tmp_path):
    result = commands.run(
        [sys.executable, "-m", "hyperlab", "predict", f"ckpt_path={tmp_path / 'nope.ckpt'}", f"images={tmp_path}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: no checkpoint file at {tmp_path / 'nope.ckpt'}"
