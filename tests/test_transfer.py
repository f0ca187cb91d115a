"""Transfer learning from torchvision's models (`model=torchvision`, issue 27 point 2). No internet: the tests write
a weights file of the right shape under the exact name torchvision's weights enum downloads (its URL's last part)
into a temporary `$TORCH_HOME/hub/checkpoints/`, then check that a run starts from it (a backbone tensor), that the
new head has the data's classes, that `finetune.freeze=[net.backbone.*]` leaves the backbone as it was, and that
evaluation and hyperlab-predict work from the checkpoint alone; and the refusals, in one line each."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import commands
import pytest
import torch
from helpers import SHAPES, compose_config, write_image_folder
from hydra import compose, initialize_config_dir
from torchvision.models import get_model, get_model_weights

from hyperlab.classes import CONF_DIR
from hyperlab.config import validate
from hyperlab.errors import ConfigError
from hyperlab.experiment import build
from hyperlab.networks.pretrained import cache_file
from hyperlab.tasks import ClassificationTask
from hyperlab.train import train

ARCH, WEIGHTS = "mobilenet_v3_small", "IMAGENET1K_V1"  # small and quick at the weights' own 224x224
MODEL = ["model=torchvision", f"model.arch={ARCH}", f"model.weights={WEIGHTS}"]
PROBE = "features.0.0.weight"  # a backbone tensor: the first convolution's


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory) -> Iterator[Path]:
    """A TORCH_HOME whose hub cache holds `ARCH`'s weights file: a freshly initialised model's, under its name."""
    home = tmp_path_factory.mktemp("torch_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(home))  # (torch.hub.get_dir() reads it on each call)
        file = cache_file(get_model_weights(ARCH)[WEIGHTS])
        file.parent.mkdir(parents=True)
        torch.manual_seed(123)
        torch.save(get_model(ARCH, weights=None).state_dict(), file)
        yield home


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("images") / "shapes", per_class=8)


def folder_data(shapes: Path) -> list[str]:
    return ["data=image_folder", f"data.path={shapes}", "data.image_size=16", "data.channels=3", "data.batch_size=8"]


def saved(torch_home: Path) -> dict[str, torch.Tensor]:
    return torch.load(cache_file(get_model_weights(ARCH)[WEIGHTS]), weights_only=True)


def python(*arguments: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, **(env or {})}
    return commands.run([sys.executable, *arguments], capture_output=True, text=True, timeout=300, env=environment,
                          cwd=cwd)  # fmt: skip


def test_a_run_starts_from_the_cached_weights_with_a_head_for_its_classes(tmp_path, torch_home, shapes):
    experiment = build(compose_config(tmp_path / "run", *MODEL, *folder_data(shapes), "logger=none"))
    net = experiment.task.net
    assert torch.equal(net.backbone.state_dict()[PROBE], saved(torch_home)[PROBE])
    assert (net.head.in_features, net.head.out_features) == (1024, len(SHAPES))
    assert net.preprocess.resize_size == [256] and net.preprocess.crop_size == [224]  # the weights' own transforms
    assert net(torch.rand(2, 3, 16, 16)).shape == (2, len(SHAPES))


def test_grey_images_are_repeated_to_three_channels(tmp_path):
    cfg = compose_config(tmp_path / "run", "model=torchvision", "model.arch=resnet18", "model.weights=null",
                         "logger=none")  # fmt: skip
    experiment = build(cfg)  # digits: 1 x 8 x 8 grey
    net = experiment.task.net
    grey = torch.rand(4, 1, 8, 8)
    assert net(grey).shape == (4, 10)
    assert torch.equal(net.preprocess(grey), net.preprocess(grey.expand(-1, 3, -1, -1)))
    assert net.preprocess.resize_size is None  # no weights: the data's own size, ImageNet's mean and std


@pytest.mark.slow
def test_train_finetune_frozen_backbone_evaluate_and_predict_from_the_checkpoint(tmp_path, torch_home, shapes):
    first = train(compose_config(tmp_path / "first", *MODEL, *folder_data(shapes), "trainer.max_epochs=1"))
    checkpoint = torch.load(first["best_checkpoint"], weights_only=True)
    network = checkpoint["hyper_parameters"]["network"]
    assert network == {"option": "torchvision", "arch": ARCH, "weights": WEIGHTS,
                       "resize": None, "input_shape": [3, 16, 16]}  # fmt: skip
    assert checkpoint["hyper_parameters"]["class_names"] == list(SHAPES)

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("finetune", overrides=[*folder_data(shapes), f"ckpt_path={first['best_checkpoint']}",
                                             "finetune.freeze=[net.backbone.*]", "trainer.max_epochs=1",
                                             f"paths.output_dir={tmp_path / 'second'}", "logger=none"])  # fmt: skip
    second = train(cfg)
    before = checkpoint["state_dict"]
    after = torch.load(second["best_checkpoint"], weights_only=True)["state_dict"]
    backbone = [name for name in before if name.startswith("net.backbone.")]
    assert backbone and all(torch.equal(before[name], after[name]) for name in backbone)  # running stats too
    assert not torch.equal(before["net.head.weight"], after["net.head.weight"])

    elsewhere = {"TORCH_HOME": str(tmp_path / "empty")}  # a checkpoint needs no weights file: its own are used
    evaluated = python("-m", "hyperlab", "eval", f"ckpt_path={second['best_checkpoint']}",
                       f"paths.log_dir={tmp_path / 'logs'}", env=elsewhere, cwd=tmp_path)  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    predicted = python("-m", "hyperlab", "predict", f"ckpt_path={second['best_checkpoint']}",
                       f"images={shapes / 'circle'}", env=elsewhere)  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    lines = predicted.stdout.strip().splitlines()
    assert len(lines) == 8 and all(line.split(": ")[1].split(" (")[0] in SHAPES for line in lines)
    task = ClassificationTask.load_from_checkpoint(second["best_checkpoint"], weights_only=True)
    assert task.net.head.out_features == len(SHAPES)

    crafted = torch.load(second["best_checkpoint"], weights_only=True)  # a checkpoint names an arch, checked as read
    crafted["hyper_parameters"]["network"]["arch"] = "os.system"
    torch.save(crafted, tmp_path / "crafted.ckpt")
    crafted = f"ckpt_path={tmp_path / 'crafted.ckpt'}"
    refused = python("-m", "hyperlab", "predict", crafted, f"images={shapes / 'circle'}")
    line = refused.stderr.strip().splitlines()[-1]
    assert refused.returncode == 2 and "model.arch='os.system' is not allowed: expected one of torchvision's" in line


@pytest.mark.slow
def test_a_finetune_from_torchvisions_weights_alone_keeps_the_frozen_backbone(tmp_path, torch_home, shapes):
    """hyperlab-train's own fine-tune of a pretrained network, without a checkpoint: finetune=default with
    model.weights set, the backbone frozen by the documented pattern, the learning rate scaled."""
    finetune = ["finetune=default", "finetune.freeze=[net.backbone.*]", "finetune.lr_factor=0.5"]
    cfg = compose_config(tmp_path / "run", *MODEL, *folder_data(shapes), *finetune, "logger=none",
                         "trainer.max_epochs=1")  # fmt: skip
    result = train(cfg)
    assert result["status"] == "completed"
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["optimizer"]["lr"] == cfg.optimizer.lr * 0.5
    pretrained = saved(torch_home)
    trained = {k.removeprefix("net.backbone."): v for k, v in checkpoint["state_dict"].items() if ".backbone." in k}
    assert trained and all(torch.equal(trained[name], pretrained[name]) for name in trained)  # frozen: unchanged
    wrong = compose_config(tmp_path / "wrong", *MODEL, *folder_data(shapes), "finetune=default",
                           "finetune.freeze=[net.features.*]", "logger=none")  # fmt: skip
    with pytest.raises(ConfigError, match="'net.features.*' matches no parameter of the network"):
        train(wrong)


def test_a_missing_weights_file_is_refused_naming_it_before_training(tmp_path, shapes):
    empty = tmp_path / "empty_home"
    process = python("-m", "hyperlab", "train", *MODEL, *folder_data(shapes), f"paths.log_dir={tmp_path / 'logs'}",
                     env={"TORCH_HOME": str(empty)}, cwd=tmp_path)  # fmt: skip
    assert process.returncode == 2 and "Traceback" not in process.stderr
    line = process.stderr.strip().splitlines()[-1]
    folder = empty / "hub" / "checkpoints"
    assert line.startswith(f"error: model.weights={WEIGHTS} needs mobilenet_v3_small-047dcff4.pth in {folder}/"), line
    assert line.endswith("copy it there, or model.weights=null"), line
    assert not list((tmp_path / "logs").rglob("*.ckpt"))


def test_an_unknown_arch_or_weights_is_refused_naming_the_nearest(tmp_path):
    refused = {
        "model.arch=resnet19": "model.arch='resnet19' is not allowed: expected one of torchvision's",
        "model.weights=IMAGENET1K_V9": "model.weights='IMAGENET1K_V9' is not allowed: expected null (no pretrained "
        "weights) or one of resnet18's: ['IMAGENET1K_V1', 'DEFAULT']",
        "model.resize=2": "model.resize=2 is not allowed",
    }
    for override, message in refused.items():
        with pytest.raises(ConfigError, match=message.replace("(", "\\(").replace(")", "\\)").replace("[", "\\[")):
            validate(compose_config(tmp_path / "run", "model=torchvision", override))
    process = python("-m", "hyperlab", "train", "model=torchvision", "model.arch=resnet19", cwd=tmp_path)
    line = process.stderr.strip().splitlines()[-1]
    assert process.returncode == 2 and line.startswith("error: model.arch='resnet19' is not allowed"), line
    assert "'resnet18'" in line and "'resnet101'" in line
