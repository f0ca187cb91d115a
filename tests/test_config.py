"""The real config tree composes, every preset and option instantiates, and overrides reach the objects."""

import pytest
import torch
from helpers import EXPERIMENTS, compose_config, write_animals_csv, write_salary_csv
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn

from hyperlab.classes import CONF_DIR
from hyperlab.config import validate
from hyperlab.data.loaders import Chunk
from hyperlab.errors import ConfigError
from hyperlab.experiment import build
from hyperlab.results import flat_hparams


def test_the_presets_of_the_first_issue_exist():
    assert {"digits", "line", "blobs"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_instantiates(make_config, experiment, mnist_root, tmp_path):
    cfg = make_config(f"experiment={experiment}")
    if "root" in cfg.data:  # a data set of files: the small ones the tests write
        cfg = make_config(f"experiment={experiment}", f"data.root={mnist_root}")
    if "path" in cfg.data.keys():  # noqa: SIM118 (`in` skips a missing value) a CSV file of the course's shape
        write = write_salary_csv if experiment == "salary" else write_animals_csv
        cfg = make_config(f"experiment={experiment}", f"data.path={write(tmp_path / 'table.csv')}")
    if cfg.finetune:  # a fine-tuning preset: it starts from a checkpoint (tests/test_checkpoints.py trains one)
        with pytest.raises(ConfigError, match="fine-tuning starts from a checkpoint: give ckpt_path="):
            validate(cfg)
        return
    validate(cfg)
    built = build(cfg)
    assert cfg.name == experiment
    assert isinstance(built.trainer.checkpoint_callback, ModelCheckpoint)
    assert built.trainer.checkpoint_callback.monitor == built.cfg.monitor.metric != "auto"
    assert any(isinstance(logger, TensorBoardLogger) for logger in built.trainer.loggers)
    # the network takes a batch of the data and gives one output per class / target
    batch = next(iter(built.datamodule.train_dataloader()))  # (the fast loop's: a chunk of mini-batches)
    x, y = batch[0] if isinstance(batch, Chunk) else batch
    output = built.task(x)
    assert output.shape[0] == x.shape[0]
    assert torch.isfinite(built.task.compute_loss(output, y))


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "rmsprop"])
@pytest.mark.parametrize("scheduler", ["none", "step", "cosine"])
def test_every_optimizer_and_scheduler_builds(make_config, optimizer, scheduler):
    task = build(make_config(f"optimizer={optimizer}", f"scheduler={scheduler}")).task
    configured = task.configure_optimizers()
    torch_optimizer = configured["optimizer"] if isinstance(configured, dict) else configured
    assert type(torch_optimizer).__name__.lower() == optimizer
    if scheduler == "none":
        assert not isinstance(configured, dict)
    else:
        assert configured["lr_scheduler"]["interval"] == "epoch"


def test_command_line_overrides_reach_the_objects(make_config):
    cfg = make_config(
        "optimizer=sgd", "optimizer.lr=0.1", "optimizer.momentum=0.9",
        "model.hidden=256", "model.depth=3", "model.dropout=0.2",
        "model.activation=leaky_relu", "model.init=kaiming",
        "data.batch_size=32", "trainer.max_epochs=20", "seed=7",
    )  # fmt: skip
    built = build(cfg)
    net = built.task.net
    linears = [m for m in net.hidden if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [256, 256, 256]
    assert sum(isinstance(m, nn.LeakyReLU) for m in net.hidden) == 3
    assert [m.p for m in net.hidden if isinstance(m, nn.Dropout)] == [0.2, 0.2, 0.2]
    assert all(torch.all(m.bias == 0) for m in linears)  # kaiming init zeroes the biases
    optimizer = built.task.configure_optimizers()
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.defaults["lr"] == 0.1 and optimizer.defaults["momentum"] == 0.9
    assert built.datamodule.batch_size == 32
    assert built.trainer.max_epochs == 20
    assert built.datamodule.shuffle_seed == 7


@pytest.mark.parametrize("accelerator", ["auto", "cpu", "gpu", "mps"])
def test_trainer_options_choose_the_accelerator(make_config, accelerator):
    assert make_config(f"trainer={accelerator}").trainer.accelerator == accelerator


def test_every_yaml_key_has_a_comment():
    """Each value in a group's option files is explained where it is set."""
    for path in CONF_DIR.glob("*/*.yaml"):
        if path.parent.name in ("experiment", "hydra"):
            continue
        for line in path.read_text().splitlines():
            is_value = ":" in line and not line.lstrip().startswith(("#", "-", "_target_", "defaults"))
            if is_value and not line.rstrip().endswith(":"):
                assert "#" in line, f"{path.name}: no comment on {line!r}"


def test_hparams_are_flat_plain_values_with_the_loss_the_task_trains_with(make_config, tmp_path):
    cfg = make_config("optimizer=sgd")
    hparams = flat_hparams(cfg, build(cfg).task)
    assert hparams["task.kind"] == "classification" and hparams["task.loss"] == "CrossEntropyLoss"  # not "mse"
    regression = compose_config(tmp_path / "line", "experiment=line", "task.loss=l1")
    assert flat_hparams(regression, build(regression).task)["task.loss"] == "L1Loss"
    assert hparams["optimizer"] == "SGD"
    assert hparams["optimizer.lr"] == 0.01
    assert hparams["model.hidden"] == 128
    assert all(isinstance(value, (int, float, str, bool)) for value in hparams.values())
