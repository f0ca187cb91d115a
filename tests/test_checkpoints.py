"""Checkpoints: resume (and its refusal without a checkpoint), evaluation in a fresh process from the file alone,
fine-tuning with a new head and frozen layers, plain `load_from_checkpoint`, hostile files, and atomic saving."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import commands
import pytest
import torch
from helpers import compose_config
from hydra import compose, initialize_config_dir

from hyperlab.checkpoints import load_file, read_checkpoint, task_from
from hyperlab.classes import CONF_DIR
from hyperlab.errors import ConfigError, DataError
from hyperlab.tasks import ClassificationTask
from hyperlab.train import train

SMALL_CNN = ["experiment=mnist_cnn", "model.channels=[8,16]", "model.hidden=32", "model.dropout=0.1"]
SMALL_CNN += ["data.batch_size=32", "callbacks=default", "logger=none"]


def hyperlab(*arguments: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return commands.run([sys.executable, *arguments], capture_output=True, text=True, timeout=timeout)


def compose_finetune(run_dir: Path, *overrides: str):
    """Compose `conf/finetune.yaml` (what hyperlab-finetune runs) into `run_dir`."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(
            "finetune",
            overrides=[*overrides, f"paths.output_dir={run_dir}", "trainer.enable_progress_bar=false"],
        )


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> dict:
    """A short digits run, with its best and last checkpoints."""
    return train(compose_config(tmp_path_factory.mktemp("digits") / "run", "trainer.max_epochs=3"))


# ------------------------------------------------------------------------------------------------ resume
def test_resuming_without_a_checkpoint_is_an_error_never_a_fresh_start(tmp_path):
    with pytest.raises(ConfigError, match="nothing to resume from: .*last.ckpt does not exist"):
        train(compose_config(tmp_path / "run", "ckpt_path=last"))
    with pytest.raises(ConfigError, match="nothing to resume from"):
        train(compose_config(tmp_path / "other", f"ckpt_path={tmp_path / 'nope.ckpt'}"))
    assert not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "other").exists()


def test_resume_continues_in_the_runs_folder_with_its_state(digits_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(digits_run["run_dir"], run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    before = read_checkpoint(last)
    result = train(compose_config(run_dir, f"ckpt_path={last}", "trainer.max_epochs=5"))
    assert result["epochs"] == 5 and result["run_dir"] == str(run_dir)
    after = read_checkpoint(last)
    assert after["epoch"] == 4 and after["global_step"] == before["global_step"] * 5 // 3  # steps went on
    assert after["optimizer_states"][0]["state"][0]["step"] > before["optimizer_states"][0]["state"][0]["step"]
    assert [row["epoch"] for row in result["history"]] == [1.0, 2.0, 3.0, 4.0, 5.0]  # the first run's epochs kept
    assert result["history"][:3] == digits_run["history"]


def test_resume_refuses_a_checkpoint_of_another_network_naming_the_parameters(digits_run, tmp_path):
    last = Path(digits_run["run_dir"]) / "checkpoints" / "last.ckpt"
    with pytest.raises(ConfigError, match=r"net.hidden.fc1.weight: checkpoint \(128, 64\), model \(32, 64\)"):
        train(compose_config(tmp_path / "run", f"ckpt_path={last}", "model.hidden=32"))


@pytest.mark.slow
def test_a_run_killed_with_sigkill_and_resumed_ends_like_the_uninterrupted_one(tmp_path):
    epochs = ["experiment=digits", "trainer.max_epochs=40", "trainer.enable_progress_bar=false"]
    whole = hyperlab("-m", "hyperlab", "train", *epochs, f"hydra.run.dir={tmp_path / 'whole'}")
    assert whole.returncode == 0, whole.stderr[-2000:]
    killed_dir = tmp_path / "killed"
    process = commands.start(
        [sys.executable, "-m", "hyperlab", "train", *epochs, f"hydra.run.dir={killed_dir}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    last = killed_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if last.exists() and read_checkpoint(last)["epoch"] >= 3:  # mid-training: well before epoch 40
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    killed_at = read_checkpoint(last)["epoch"]
    assert 3 <= killed_at < 39 and not (killed_dir / "metrics.json").exists()
    resumed = hyperlab("-m", "hyperlab", "train", *epochs, f"ckpt_path={last}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    first = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    second = json.loads((killed_dir / "metrics.json").read_text())
    assert second["epochs"] == 40
    for key in ("test/acc", "val/acc", "train/loss"):
        assert second["metrics"][key] == pytest.approx(first["metrics"][key], abs=0.01), key
    assert [row["epoch"] for row in second["history"]] == [row["epoch"] for row in first["history"]]  # all 40


# ------------------------------------------------------------------------------------------------ eval
def test_eval_rebuilds_model_and_data_from_the_checkpoint_alone_in_a_fresh_process(digits_run, tmp_path):
    best = digits_run["best_checkpoint"]
    process = hyperlab("-m", "hyperlab", "eval", f"ckpt_path={best}", f"paths.log_dir={tmp_path}")
    assert process.returncode == 0, process.stderr[-2000:]
    folder = Path(process.stdout.strip().splitlines()[-1].removeprefix("results: "))
    result = json.loads((folder / "metrics.json").read_text())
    assert result["metrics"]["test/acc"] == pytest.approx(digits_run["metrics"]["test/acc"], abs=1e-6)
    assert f"test/acc             {digits_run['metrics']['test/acc']:.4f}" in process.stdout
    assert folder.parent == tmp_path / "digits" / "eval"  # <log_dir>/<name>/eval/


def test_eval_takes_other_data_and_refuses_unknown_keys(mnist_root, tmp_path):
    run = train(compose_config(tmp_path / "run", *SMALL_CNN, f"data.root={mnist_root}", "trainer.max_epochs=2"))
    fashion = hyperlab("-m", "hyperlab", "eval", f"ckpt_path={run['best_checkpoint']}", "data=fashion_mnist",
                     f"data.root={mnist_root}", f"paths.log_dir={tmp_path}")  # fmt: skip
    assert fashion.returncode == 0, fashion.stderr[-2000:]
    folder = Path(fashion.stdout.strip().splitlines()[-1].removeprefix("results: "))
    config = (folder / "config.yaml").read_text()
    assert "dataset: fashion_mnist" in config and f"root: {mnist_root}" in config
    unknown = hyperlab("-m", "hyperlab", "eval", f"ckpt_path={run['best_checkpoint']}", "data.nope=1")
    assert unknown.returncode == 2 and "data.nope" in unknown.stderr and "Traceback" not in unknown.stderr
    model = hyperlab("-m", "hyperlab", "eval", f"ckpt_path={run['best_checkpoint']}", "model.hidden=3")
    assert model.returncode == 2 and "model.hidden cannot be set for an evaluation" in model.stderr
    other = hyperlab("-m", "hyperlab", "eval", f"ckpt_path={run['best_checkpoint']}", "data.classes=[0,1,2]",
                   f"data.root={mnist_root}", f"paths.log_dir={tmp_path}")  # fmt: skip
    assert other.returncode == 2 and "tells 10 classes apart; this data has 3" in other.stderr


def test_plain_lightning_load_from_checkpoint_works_in_a_users_script(digits_run):
    script = (
        "import torch\nfrom hyperlab.tasks import ClassificationTask\n"
        f"task = ClassificationTask.load_from_checkpoint({digits_run['best_checkpoint']!r})\n"
        "print(tuple(task(torch.zeros(2, 1, 8, 8)).shape), task.hparams.class_names[3])\n"
    )
    # (a user's own script, in a fresh interpreter)
    process = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr[-2000:]
    assert process.stdout.strip() == "(2, 10) 3"


# ------------------------------------------------------------------------------------------------ fine-tune
@pytest.fixture(scope="module")
def lower_digits(tmp_path_factory, mnist_root) -> dict:
    """A small CNN pretrained on the digits 0-4 of the test-written MNIST files."""
    run_dir = tmp_path_factory.mktemp("lower") / "run"
    overrides = [*SMALL_CNN, f"data.root={mnist_root}", "data.classes=[0,1,2,3,4]", "trainer.max_epochs=4"]
    return train(compose_config(run_dir, *overrides))


def test_finetune_replaces_the_head_trains_it_and_leaves_frozen_weights_bit_for_bit(
    lower_digits, mnist_root, tmp_path, caplog
):
    pretrained = read_checkpoint(lower_digits["best_checkpoint"])["state_dict"]
    cfg = compose_finetune(
        tmp_path / "run", *SMALL_CNN, f"data.root={mnist_root}", "data.classes=[5,6,7,8,9]",
        f"ckpt_path={lower_digits['best_checkpoint']}", "finetune.freeze=[net.features.*]", "finetune.head=new",
        "finetune.lr_factor=1.0", "trainer.max_epochs=3",
    )  # fmt: skip
    with caplog.at_level("INFO"):
        result = train(cfg)
    tuned = read_checkpoint(result["best_checkpoint"])["state_dict"]
    assert any("running_var" in name for name in pretrained)  # (the preset's CNN has batch norms)
    for name, value in pretrained.items():
        if name.startswith("net.features.") and "num_batches" not in name:  # frozen batch norms stay in eval mode:
            assert torch.equal(tuned[name], value), f"{name} changed though frozen"  # their statistics stay too
    assert not torch.equal(tuned["net.hidden.fc1.weight"], pretrained["net.hidden.fc1.weight"])
    assert not torch.equal(tuned["net.head.weight"], pretrained["net.head.weight"])  # new, then trained
    assert result["metrics"]["test/acc"] > 0.5  # 5 classes: chance is 0.2
    assert "frozen    net.features.conv1.weight" in caplog.text and "trainable net.head.weight" in caplog.text
    assert "parameters: " in caplog.text and " frozen" in caplog.text
    optimizer = read_checkpoint(result["best_checkpoint"])["hyper_parameters"]["optimizer"]
    assert optimizer["lr"] == pytest.approx(0.001)  # the fine-tune's own optimizer


def test_finetune_gets_a_new_head_for_another_number_of_classes_and_can_unfreeze(lower_digits, mnist_root, tmp_path):
    pretrained = read_checkpoint(lower_digits["best_checkpoint"])["state_dict"]
    cfg = compose_finetune(
        tmp_path / "run",
        *SMALL_CNN,
        f"data.root={mnist_root}",
        f"ckpt_path={lower_digits['best_checkpoint']}",
        "finetune.freeze=[net.features.*]",
        "finetune.unfreeze_after=1",
        "trainer.max_epochs=2",
    )  # fmt: skip  (all ten classes: the head grows from 5 to 10 outputs)
    result = train(cfg)
    tuned = read_checkpoint(result["last_checkpoint"] if "last_checkpoint" in result else result["best_checkpoint"])
    assert tuned["state_dict"]["net.head.weight"].shape == (10, 32)
    last = read_checkpoint(Path(result["run_dir"]) / "checkpoints" / "last.ckpt")
    assert not torch.equal(last["state_dict"]["net.features.conv1.weight"], pretrained["net.features.conv1.weight"])
    assert len(last["optimizer_states"][0]["param_groups"]) == 2  # the unfrozen parameters joined the optimizer
    assert last["hyper_parameters"]["optimizer"]["lr"] == pytest.approx(0.0001)  # lr_factor 0.1 by default


def test_a_freeze_pattern_that_matches_nothing_is_refused_before_any_run_folder(lower_digits, mnist_root, tmp_path):
    cfg = compose_finetune(tmp_path / "run", *SMALL_CNN, f"data.root={mnist_root}", "data.classes=[5,6,7,8,9]",
                           f"ckpt_path={lower_digits['best_checkpoint']}",
                           "finetune.freeze=[net.layers.*]")  # fmt: skip
    with pytest.raises(ConfigError, match=r"finetune.freeze: 'net.layers.\*' matches no parameter .* net.features"):
        train(cfg)
    assert not (tmp_path / "run").exists()


def test_finetune_refuses_a_checkpoint_of_other_inputs(digits_run, mnist_root, tmp_path):
    cfg = compose_finetune(tmp_path / "run", *SMALL_CNN, f"data.root={mnist_root}",
                           f"ckpt_path={digits_run['best_checkpoint']}")  # fmt: skip
    with pytest.raises(ConfigError, match=r"trained on inputs of shape \[1, 8, 8\]; this data's are \[1, 28, 28\]"):
        train(cfg)


# ------------------------------------------------------------------------------------------------ safety
def hostile_files(folder: Path, good: Path) -> dict[str, Path]:
    """Files that must never be loaded (nor run): each one built here."""
    marker = folder / "owned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    files = {name: folder / f"{name}.ckpt" for name in ("pickled", "instantiator", "empty", "truncated", "random")}
    torch.save({"state_dict": {}, "hyper_parameters": {"x": Payload()}}, files["pickled"])
    checkpoint = read_checkpoint(good)
    checkpoint["hyper_parameters"]["_instantiator"] = "os.system"
    torch.save(checkpoint, files["instantiator"])
    files["empty"].write_bytes(b"")
    data = good.read_bytes()
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["random"].write_bytes(os.urandom(4096))
    return files


@pytest.mark.parametrize("name", ["pickled", "instantiator", "empty", "truncated", "random"])
def test_hostile_or_broken_files_are_refused_naming_the_file_and_nothing_runs(digits_run, tmp_path, name):
    path = hostile_files(tmp_path, Path(digits_run["best_checkpoint"]))[name]
    with pytest.raises(DataError) as error:
        task_from(read_checkpoint(path), path)
    assert str(path) in str(error.value)
    if name in ("pickled", "truncated"):  # the command lines say so in one line too (a process each: slow)
        for command in (["-m", "hyperlab", "eval", f"ckpt_path={path}"],
                        ["-m", "hyperlab", "predict", f"ckpt_path={path}", f"images={tmp_path}"]):  # fmt: skip
            process = hyperlab(*command)
            assert process.returncode == 2 and str(path) in process.stderr and "Traceback" not in process.stderr
    if name in ("pickled", "instantiator"):  # and Lightning's own loader refuses them too
        with pytest.raises(Exception, match="Weights only load failed|instantiator"):
            ClassificationTask.load_from_checkpoint(path)
    assert not (tmp_path / "owned").exists()


def test_checkpoint_files_are_replaced_atomically_even_when_killed_while_saving(tmp_path):
    """Kill a process that keeps saving a big checkpoint the way the Trainer does; the file is always whole."""
    path = tmp_path / "last.ckpt"
    script = (
        "import torch\nfrom lightning.fabric.plugins.io.torch_io import TorchCheckpointIO\n"
        "io = TorchCheckpointIO()\nstep = 0\n"
        "while True:\n"
        "    step += 1\n"
        "    weights = torch.full((4_000_000,), float(step))\n"
        f"    io.save_checkpoint({{'state_dict': {{'w': weights}}, 'step': step}}, {str(path)!r})\n"
    )  # fmt: skip
    for delay in (0.05, 0.2, 0.35, 0.5):  # a 16 MB checkpoint takes about that long to write
        before = path.stat().st_mtime_ns if path.exists() else 0
        process = subprocess.Popen([sys.executable, "-c", script])
        deadline = time.monotonic() + 120
        while (not path.exists() or path.stat().st_mtime_ns == before) and time.monotonic() < deadline:
            time.sleep(0.01)  # the process is up and saving
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        checkpoint = load_file(path)  # whole: the last save that finished, never a half-written one
        assert torch.all(checkpoint["state_dict"]["w"] == checkpoint["step"])
    assert path.exists()
    assert not [p for p in tmp_path.iterdir() if p != path and p.stat().st_size > 0 and p.suffix == ".ckpt"]
