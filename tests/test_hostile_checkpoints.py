"""A checkpoint is data: crafted files, each built here from a real checkpoint, given to the four commands that
read one (hyperlab-eval, hyperlab-predict, hyperlab-finetune and a resume). None of them may build a class or call
a function the file names, or write anywhere but the folder the command line asked for."""

import collections
import copy
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import commands
import numpy as np
import pytest
import torch
from helpers import compose_config
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from PIL import Image

from hyperlab.checkpoints import load_file, read_checkpoint
from hyperlab.classes import CONF_DIR
from hyperlab.errors import DataError
from hyperlab.evaluate import evaluate
from hyperlab.predict import predict
from hyperlab.train import train

Edit = Callable[[dict, Path], None]


def write_to(marker: Path) -> dict:
    """What Hydra's `instantiate` would turn into a call that writes `marker`."""
    return {"_target_": "pathlib.Path.write_text", "_args_": [str(marker), "owned"]}


def set_in(path: str, value: object) -> Edit:
    """An edit that sets `path` (dots, from the checkpoint's top) to `value` (`MARKER` is replaced by a write)."""

    def edit(checkpoint: dict, marker: Path) -> None:
        *parents, last = path.split(".")
        node = checkpoint
        for key in parents:
            node = node[key]
        if isinstance(value, list):
            node[last] = [write_to(marker) if item == "MARKER" else item for item in value]
        else:
            node[last] = write_to(marker) if value == "MARKER" else value

    return edit


# case -> (edit, what the one-line refusal says)
REFUSED: dict[str, tuple[Edit, str]] = {
    "target in a data value": (set_in("hyperlab.config.data.batch_size", "MARKER"), "data.batch_size._target_"),
    "target in a list": (set_in("hyperlab.config.data.drop", ["MARKER"]), "._target_ is not allowed"),
    "data class": (set_in("hyperlab.config.data._target_", "shutil.copyfile"), "data._target_='shutil.copyfile'"),
    "target in a callback value": (
        set_in("hyperlab.config.callbacks.model_checkpoint.dirpath", "MARKER"),
        "callbacks.model_checkpoint.dirpath._target_",
    ),
    "callback arguments": (set_in("hyperlab.config.callbacks.evil", "MARKER"), "callbacks.evil._args_"),
    "network class": (set_in("hyper_parameters.network._target_", "os.system"), "network._target_='os.system'"),
    "network option": (set_in("hyper_parameters.network.option", "os.system"), "network.option='os.system'"),
    "optimizer class": (set_in("hyper_parameters.optimizer._target_", "builtins.open"), "optimizer._target_="),
    "target in a hyper-parameter": (set_in("hyper_parameters.class_names", ["MARKER"] * 10), "class_names[0]"),
    "network value out of range": (set_in("hyper_parameters.network.hidden", -5), "model.hidden=-5"),
    "value of the wrong type": (set_in("hyperlab.config.data.seed", "zero"), "data.seed"),
    "task class": (set_in("hyperlab.task", "lightning.pytorch.LightningModule"), "not one of"),
    "no hyperlab record": (lambda checkpoint, marker: checkpoint.pop("hyperlab"), "no hyperlab record"),
    "a class as a value": (set_in("loops.fit_loop.extra", collections.OrderedDict), "holds a type"),
    "an interpolation": (set_in("hyperlab.config.data.batch_size", "${oc.env:HOME}"), "an interpolation"),
    "a number as text": (set_in("hyper_parameters.network.hidden", "128"), "model.hidden='128' is not allowed"),
    "epoch as text": (set_in("epoch", "x"), "checkpoint.epoch='x' is not allowed"),
    "a weight that is no tensor": (lambda checkpoint, marker: checkpoint["state_dict"].update(w=5), "state_dict"),
}
# plain values that would choose where files go: taken as data, never as places
PLACES: dict[str, Edit] = {
    "name that climbs out": set_in("hyperlab.config.name", "../../../escaped"),
    "log folder elsewhere": set_in("hyperlab.config.paths.log_dir", "ESCAPE"),
}


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> Path:
    """A real digits run (its folder), the source of every crafted file."""
    run_dir = tmp_path_factory.mktemp("original") / "run"
    train(compose_config(run_dir, "trainer.max_epochs=2", "logger=none"))
    return run_dir


def crafted_run(original: Path, folder: Path, edit: Edit) -> tuple[Path, Path]:
    """A copy of the run whose best and last checkpoints carry `edit`; returns (file, marker it must not make)."""
    run_dir = folder / "run"
    shutil.copytree(original, run_dir)
    (folder / "images").mkdir()
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(folder / "images" / "blank.png")
    marker = folder / "owned"
    for name in ("best.ckpt", "last.ckpt"):
        checkpoint = load_file(run_dir / "checkpoints" / name)
        edited = copy.deepcopy(checkpoint)
        edit(edited, marker)
        replace_escape(edited, folder / "elsewhere")
        torch.save(edited, run_dir / "checkpoints" / name)
    return run_dir / "checkpoints" / "last.ckpt", marker


def replace_escape(node: object, escape: Path) -> None:
    """Put the path of a folder outside the run where an edit asked for one (`ESCAPE`)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if value == "ESCAPE":
                node[key] = str(escape)
            else:
                replace_escape(value, escape)


def files_under(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*")}


def run_command(command: str, checkpoint: Path, folder: Path) -> None:
    """Run `command` in this process on `checkpoint`, writing only under `folder / "out"`."""
    out = folder / "out"
    if command == "eval":
        evaluate(str(checkpoint), [f"paths.log_dir={out}"])
    elif command == "predict":
        options = {"ckpt_path": str(checkpoint), "images": str(folder / "images"), "table": None, "top_k": 3,
                   "invert": None, "box_fraction": 1.0}  # fmt: skip
        predict(OmegaConf.create(options))
    elif command == "finetune":
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("finetune", overrides=[f"ckpt_path={checkpoint}", f"paths.output_dir={out / 'tuned'}",
                                                 "trainer.max_epochs=1", "logger=none"])  # fmt: skip
        train(cfg)
    else:  # resume the run the file belongs to
        train(compose_config(checkpoint.parent.parent, f"ckpt_path={checkpoint}", "trainer.max_epochs=3",
                             "logger=none"))  # fmt: skip


COMMANDS = ["eval", "predict", "finetune", "resume"]


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_crafted_checkpoint_is_refused_by_every_command_and_nothing_in_it_runs(original, tmp_path, case):
    edit, message = REFUSED[case]
    for command in COMMANDS:
        folder = tmp_path / command
        checkpoint, marker = crafted_run(original, folder, edit)
        before = files_under(tmp_path)
        with pytest.raises(DataError, match="refused|not written by hyperlab") as error:
            run_command(command, checkpoint, folder)
        assert message in str(error.value) and "\n" not in str(error.value), (command, str(error.value))
        assert not marker.exists(), command
        created = files_under(tmp_path) - before
        assert not [path for path in created if folder / "out" not in path.parents]


@pytest.mark.parametrize("case", list(PLACES))
def test_places_a_checkpoint_names_never_decide_where_files_go(original, tmp_path, case):
    """The stored name is reduced to a plain folder name; the stored log folder and data root are not written to."""
    for command in ("eval", "resume"):
        folder = tmp_path / command
        checkpoint, _ = crafted_run(original, folder, PLACES[case])
        before = files_under(tmp_path)
        run_command(command, checkpoint, folder)
        created = files_under(tmp_path) - before
        allowed = folder / "out" if command == "eval" else checkpoint.parent.parent
        assert created and all(path == allowed or allowed in path.parents for path in created), sorted(created)[:5]
        assert not (folder / "elsewhere").exists() and not (tmp_path.parent / "escaped").exists()


def test_a_resumed_run_writes_its_own_config_into_its_checkpoints(original, tmp_path):
    """Resuming never carries the old file's stored config over: new checkpoints hold the resuming run's."""
    checkpoint, _ = crafted_run(original, tmp_path, set_in("hyperlab.config.name", "planted"))
    result = train(compose_config(checkpoint.parent.parent, f"ckpt_path={checkpoint}", "trainer.max_epochs=3",
                                  "logger=none", "name=resumed"))  # fmt: skip
    assert result["status"] == "completed" and result["epochs"] == 3
    config = read_checkpoint(checkpoint)["hyperlab"]["config"]
    assert config["name"] == "resumed" and config["trainer"]["max_epochs"] == 3


@pytest.mark.parametrize("command", COMMANDS)
def test_the_command_lines_refuse_a_crafted_file_in_one_line_with_status_2(original, tmp_path, command):
    checkpoint, marker = crafted_run(original, tmp_path, REFUSED["target in a data value"][0])
    argv = {
        "eval": ["hyperlab", "eval", f"ckpt_path={checkpoint}", f"paths.log_dir={tmp_path / 'out'}"],
        "predict": ["hyperlab", "predict", f"ckpt_path={checkpoint}", f"images={tmp_path}"],
        "finetune": ["hyperlab", "finetune", f"ckpt_path={checkpoint}",
                     f"hydra.run.dir={tmp_path / 'out'}"],
        "resume": ["hyperlab", "train", f"ckpt_path={checkpoint}"],
    }[command]  # fmt: skip
    process = commands.run([sys.executable, "-m", *argv], capture_output=True, text=True, timeout=300,
                             env={**os.environ, "HYDRA_FULL_ERROR": "0"})  # fmt: skip
    assert process.returncode == 2, process.stderr[-2000:]
    errors = [line for line in process.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "data.batch_size._target_ is not allowed" in errors[0]
    assert "Traceback" not in process.stderr and not marker.exists()


def test_evaluation_never_downloads_into_a_folder_the_checkpoint_names(mnist_root, tmp_path):
    run = train(compose_config(tmp_path / "run", "experiment=mnist_mlp", f"data.root={mnist_root}",
                               "trainer.max_epochs=1", "logger=none", "callbacks=default"))  # fmt: skip
    checkpoint = load_file(run["best_checkpoint"])
    # a stored root with downloading on: never honoured (nothing is downloaded here: no network, and the second
    # evaluation's folder already holds the files)
    checkpoint["hyperlab"]["config"]["data"].update({"root": str(tmp_path / "elsewhere"), "download": True})
    torch.save(checkpoint, tmp_path / "crafted.ckpt")
    with pytest.raises(DataError, match="set data.download=true to fetch them"):
        evaluate(str(tmp_path / "crafted.ckpt"), [f"paths.log_dir={tmp_path / 'out'}"])
    assert not (tmp_path / "elsewhere").exists()
    result = evaluate(str(tmp_path / "crafted.ckpt"), [f"paths.log_dir={tmp_path / 'out'}", f"data.root={mnist_root}"])
    assert result["metrics"]["test/acc"] == pytest.approx(run["metrics"]["test/acc"], abs=1e-6)
    # a download asked for goes where the command line (or conf/) says, never into the file's folder
    asked = [f"paths.log_dir={tmp_path / 'out'}", "data.download=true", f"paths.data_dir={mnist_root}"]
    folder = Path(evaluate(str(tmp_path / "crafted.ckpt"), asked)["run_dir"])
    assert f"root: {mnist_root}" in (folder / "config.yaml").read_text() and not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("where", ["local://{victim}", "{dirpath}/../../victim", "{victim}/x.ckpt"])
def test_a_resume_never_deletes_or_tests_a_file_its_callbacks_state_names(original, tmp_path, where):
    """Lightning restores a ModelCheckpoint's paths and later deletes the "previous best" (any path, any fsspec
    URL) and tests the "best" it names: such a state is dropped before Lightning restores it."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "x.ckpt").write_bytes((original / "checkpoints" / "best.ckpt").read_bytes())

    def edit(checkpoint: dict, marker: Path) -> None:
        for state in checkpoint["callbacks"].values():
            path = where.format(victim=victim, dirpath=state["dirpath"])
            state.update(best_model_path=path, kth_best_model_path=path, best_k_models={path: torch.tensor(1.0)})

    checkpoint, _ = crafted_run(original, tmp_path / "crafted", edit)
    (checkpoint.parent.parent / "metrics.json").unlink()  # killed during its test: the resume trains no more epochs
    result = train(compose_config(checkpoint.parent.parent, f"ckpt_path={checkpoint}", "trainer.max_epochs=2",
                                  "logger=none"))  # fmt: skip
    assert result["status"] == "completed" and (victim / "x.ckpt").is_file()
    assert result["best_checkpoint"] == "" or Path(result["best_checkpoint"]).parent == checkpoint.parent
