"""CIFAR-10 (`data=cifar10`, issue 27 point 3): torchvision's python files, written small by the tests in their exact
format, decoded without running code (a crafted pickle is refused and its command never runs), split and augmented
on whole batches; the class names in the checkpoint, the figures and hyperlab-predict; the missing files in one
line."""

import os
import pickle
import sys
from pathlib import Path

import commands
import numpy as np
import pytest
import torch
from helpers import CLASSES, COLOURS, compose_config, write_cifar
from PIL import Image

from hyperlab.data.cifar import random_crop_flip
from hyperlab.errors import DataError
from hyperlab.experiment import build
from hyperlab.train import train


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory) -> Path:
    return write_cifar(tmp_path_factory.mktemp("data"))


def test_the_files_are_decoded_split_and_named_by_batches_meta(tmp_path, cifar_root):
    module = build(compose_config(tmp_path / "run", "experiment=cifar_cnn", f"data.root={cifar_root}",
                                  "logger=none")).datamodule  # fmt: skip
    assert module.class_names == CLASSES
    x, y = module.splits["train"]
    assert x.dtype == torch.uint8 and list(x.shape[1:]) == [3, 32, 32]
    assert len(y) + len(module.splits["val"][1]) == 150 and len(module.splits["test"][1]) == 30
    assert set(torch.bincount(module.splits["val"][1], minlength=10).tolist()) <= {1, 2}  # stratified
    assert module.input_shape == [3, 32, 32]
    pixel = x[0, :, 0, 0].float()  # each class's colour, with noise: the channel-major layout read as such
    assert torch.allclose(pixel, torch.tensor(COLOURS[int(y[0])], dtype=torch.float32), atol=80)


def test_augmentation_crops_and_flips_whole_batches(tmp_path):
    images = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).reshape(2, 3, 32, 32)
    same = random_crop_flip(images, 0, torch.Generator().manual_seed(0))
    assert all(torch.equal(s, i) or torch.equal(s, i.flip(-1)) for s, i in zip(same, images, strict=True))
    moved = random_crop_flip(images, 4, torch.Generator().manual_seed(1))
    assert moved.shape == images.shape and not torch.equal(moved, images)
    again = random_crop_flip(images, 4, torch.Generator().manual_seed(1))
    assert torch.equal(moved, again)  # seeded: both training loops draw the same


@pytest.mark.slow
def test_cifar_cnn_trains_and_predicts_by_class_name(tmp_path, cifar_root):
    small = ["trainer.max_epochs=1", "data.batch_size=32", "model.channels=[8,16,16]"]
    result = train(compose_config(tmp_path / "run", "experiment=cifar_cnn", f"data.root={cifar_root}", *small))
    assert result["status"] == "completed"
    checkpoint = torch.load(result["best_checkpoint"], weights_only=True)
    assert checkpoint["hyper_parameters"]["class_names"] == CLASSES
    assert checkpoint["CIFAR10DataModule"] == {"image_size": 32, "channels": 3}
    assert (tmp_path / "run" / "figures" / "confusion_matrix.png").is_file()
    new = tmp_path / "new"
    new.mkdir()
    Image.new("RGB", (50, 40), (255, 0, 0)).save(new / "red.png")
    process = commands.run(
        [sys.executable, "-m", "hyperlab", "predict", f"ckpt_path={result['best_checkpoint']}", f"images={new}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert process.returncode == 0, process.stderr[-2000:]
    named = process.stdout.split(": ", 1)[1]
    assert any(name in named for name in CLASSES), process.stdout


def test_a_crafted_pickle_is_refused_and_never_runs(tmp_path):
    pwned = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {pwned}",))

    root = write_cifar(tmp_path / "data", per_class=1)
    batch = root / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(pickle.dumps({"data": Exploit(), "labels": [0]}, protocol=2))
    with pytest.raises(DataError) as refused:
        build(compose_config(tmp_path / "run", "experiment=cifar_cnn", f"data.root={root}", "logger=none"))
    message = str(refused.value)
    assert str(batch) in message and "posix.system" in message and "nothing in it was run" in message
    assert "\n" not in message and not pwned.exists()
    process = commands.run(
        [sys.executable, "-m", "hyperlab", "train", "experiment=cifar_cnn", f"data.root={root}", "logger=none",
         f"paths.log_dir={tmp_path / 'logs'}"], capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert process.returncode == 2 and "Traceback" not in process.stderr and not pwned.exists()
    assert process.stderr.strip().splitlines()[-1].startswith(f"error: {batch} is refused: it names posix.system")


def test_files_of_the_wrong_shape_are_refused_by_name(tmp_path):
    root = write_cifar(tmp_path / "data", per_class=1)
    folder = root / "cifar-10-batches-py"
    crafted = {
        "data_batch_2": ({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}, "uint8 array of N x 3072"),
        "data_batch_4": ({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]}, "integers from 0 to 9"),
        "test_batch": ({"data": np.zeros((2, 3072), np.float32), "labels": [0, 1]}, "not float32"),
        "batches.meta": ({"label_names": ["a", "b"]}, "a list of 10 names"),
    }
    for name, (content, problem) in crafted.items():
        original = (folder / name).read_bytes()
        (folder / name).write_bytes(pickle.dumps(content, protocol=4))
        with pytest.raises(DataError, match=problem) as refused:
            build(compose_config(tmp_path / "run", "data=cifar10", f"data.root={root}", "logger=none"))
        assert str(folder / name) in str(refused.value)
        (folder / name).write_bytes(original)


def test_missing_files_say_where_they_go(tmp_path):
    process = commands.run(
        [sys.executable, "-m", "hyperlab", "train", "data=cifar10", f"data.root={tmp_path / 'nothing'}",
         "data.download=false", f"paths.log_dir={tmp_path / 'logs'}"], capture_output=True, text=True, timeout=300,
        cwd=tmp_path,
    )  # fmt: skip
    assert process.returncode == 2 and "Traceback" not in process.stderr
    line = process.stderr.strip().splitlines()[-1]
    folder = (tmp_path / "nothing" / "cifar-10-batches-py").resolve()
    expected = (f"error: data=cifar10 reads {folder}/ (data_batch_1..5, test_batch, batches.meta): put torchvision's "
                "CIFAR-10 python version there, or data.download=true with internet")  # fmt: skip
    assert line.startswith(expected), line
