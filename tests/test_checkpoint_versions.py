"""The form of a checkpoint: new ones name their network, optimizer, scheduler and data by their option of conf/
(`{"option": "mlp", ...}`), never by a class; files written by earlier versions (tests/data/checkpoints/, whose
nodes name their class with `_target_`) still load, evaluate and fine-tune, and are policed as they were."""

import copy
from pathlib import Path

import pytest
import torch
from helpers import compose_config
from hydra import compose, initialize_config_dir

from hyperlab.checkpoints import load_file, read_checkpoint, task_from
from hyperlab.classes import CONF_DIR
from hyperlab.errors import DataError
from hyperlab.evaluate import evaluate
from hyperlab.networks import MLP, LineModel
from hyperlab.train import train

OLD = Path(__file__).parent / "data" / "checkpoints"
OLD_BLOBS = OLD / "v1-blobs-mlp.ckpt"  # blobs, an MLP, Adam (written at e2e0fa7: see its README.md)
OLD_LINE = OLD / "v1-line-step.ckpt"  # the line model, SGD and StepLR


def targets_in(node: object, where: str = "") -> list[str]:
    """The places of every `_target_` key in `node`."""
    if isinstance(node, dict):
        here = [f"{where}._target_"] if "_target_" in node else []
        return here + [found for key, value in node.items() for found in targets_in(value, f"{where}.{key}")]
    if isinstance(node, (list, tuple)):
        return [found for index, item in enumerate(node) for found in targets_in(item, f"{where}[{index}]")]
    return []


@pytest.fixture(scope="module")
def blobs_run(tmp_path_factory) -> dict:
    run_dir = tmp_path_factory.mktemp("blobs") / "run"
    return train(compose_config(run_dir, "experiment=blobs", "scheduler=step", "trainer.max_epochs=1", "logger=none"))


def test_a_new_checkpoint_names_options_and_no_class(blobs_run):
    checkpoint = torch.load(blobs_run["best_checkpoint"], weights_only=True)
    hyper_parameters, config = checkpoint["hyper_parameters"], checkpoint["hyperlab"]["config"]
    assert targets_in(hyper_parameters) == [] and targets_in(config) == []
    assert hyper_parameters["network"] == {"option": "mlp", "hidden": 16, "depth": 1, "taper": 1.0, "dropout": 0.0,
                                           "activation": "relu", "batchnorm": False, "init": "default",
                                           "input_shape": [2]}  # fmt: skip
    assert hyper_parameters["optimizer"]["option"] == "adam" and hyper_parameters["optimizer"]["lr"] == 0.01
    assert hyper_parameters["scheduler"] == {"option": "step", "step_size": 10, "gamma": 0.1}
    options = {group: config[group]["option"] for group in ("data", "model", "optimizer", "scheduler")}
    assert options == {"data": "blobs", "model": "mlp", "optimizer": "adam", "scheduler": "step"}
    assert config["trainer"]["max_epochs"] == 1 and "model_checkpoint" in config["callbacks"]  # (a record)
    assert checkpoint["hyperlab"]["task"] == "classification"  # (its kind, whichever loop trained it; no class path)
    task = task_from(read_checkpoint(blobs_run["best_checkpoint"]), blobs_run["best_checkpoint"])
    assert isinstance(task.net, MLP)


@pytest.mark.parametrize(("path", "network"), [(OLD_BLOBS, MLP), (OLD_LINE, LineModel)])
def test_a_checkpoint_of_an_earlier_version_still_loads(path, network):
    checkpoint = read_checkpoint(path)
    assert checkpoint["hyper_parameters"]["network"]["_target_"].startswith("hyperlab.networks.")  # (the old form)
    assert checkpoint["hyperlab"]["task"].startswith("hyperlab.tasks.")  # (its task named by class path)
    task = task_from(checkpoint, path)
    assert isinstance(task.net, network)
    assert task(torch.zeros(3, *checkpoint["hyper_parameters"]["network"]["input_shape"])).shape[0] == 3


def test_a_checkpoint_of_an_earlier_version_evaluates_as_it_tested(tmp_path):
    result = evaluate(str(OLD_BLOBS), [f"paths.log_dir={tmp_path}", "threads=1"])
    assert result["metrics"]["test/acc"] == pytest.approx(0.9556, abs=1e-3)  # what the run that wrote it tested


def test_a_fine_tune_of_an_earlier_versions_checkpoint_writes_the_new_form(tmp_path):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("finetune", overrides=["experiment=blobs", f"ckpt_path={OLD_BLOBS}", "trainer.max_epochs=1",
                                             "logger=none", f"paths.output_dir={tmp_path / 'tuned'}"])  # fmt: skip
    result = train(cfg)
    checkpoint = torch.load(result["best_checkpoint"], weights_only=True)
    assert checkpoint["hyper_parameters"]["network"]["option"] == "mlp"
    assert targets_in(checkpoint["hyper_parameters"]) == [] and targets_in(checkpoint["hyperlab"]["config"]) == []


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        ("hyper_parameters.network._target_", "os.system", "network._target_='os.system' is not allowed"),
        ("hyper_parameters.optimizer._target_", "builtins.open", "optimizer._target_='builtins.open' is not allowed"),
        ("hyper_parameters.scheduler", {"_target_": "os.system"}, "scheduler._target_='os.system' is not allowed"),
        ("hyperlab.config.data._target_", "shutil.copyfile", "data._target_='shutil.copyfile' is not allowed"),
        ("hyperlab.config.trainer._args_", ["rm -rf /"], "config.trainer._args_ is not allowed"),
        ("hyper_parameters.network.option", "mlp", "network names both an option and a _target_"),
    ],
)
def test_an_earlier_versions_file_is_policed_as_before(tmp_path, where, value, message):
    assert_refused(craft(OLD_BLOBS, where, value, tmp_path / "crafted.ckpt"), message)


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        ("hyper_parameters.network.option", "os.system", "network.option='os.system' is not allowed: expected one of"),
        ("hyper_parameters.optimizer.option", "../../x", "optimizer.option='../../x' is not allowed"),
        ("hyper_parameters.scheduler.option", ["step"], "scheduler.option=\"['step']\" is not allowed"),
        ("hyperlab.config.data.option", "mnist", "data.num_samples is not an option of MNISTDataModule"),
        ("hyperlab.config.model.option", "nope", "config.model.option='nope' is not allowed"),
        ("hyper_parameters.network.hidden", -5, "model.hidden=-5"),
    ],
)
def test_a_new_files_option_names_are_looked_up_in_conf(blobs_run, tmp_path, where, value, message):
    assert_refused(craft(blobs_run["best_checkpoint"], where, value, tmp_path / "crafted.ckpt"), message)


def craft(source, where: str, value, crafted: Path) -> Path:
    """A copy of the checkpoint `source` with `value` put at the dotted path `where`."""
    checkpoint = copy.deepcopy(load_file(source))
    *parents, last = where.split(".")
    node = checkpoint
    for key in parents:
        node = node[key]
    node[last] = value
    torch.save(checkpoint, crafted)
    return crafted


def assert_refused(crafted: Path, message: str) -> None:
    """Reading `crafted` is refused in one line that says `message`."""
    with pytest.raises(DataError, match="is refused") as error:
        read_checkpoint(crafted)
    assert message in str(error.value) and "\n" not in str(error.value), str(error.value)
