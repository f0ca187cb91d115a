"""Hostile training states and checkpoint files (issue 29): each crafted here from one real checkpoint. What a resume
restores (optimizer, scheduler, loop and callback states) is checked against the objects the run has just built,
and what any command reads (the archive, the weights, the stored config) before it is used: every case is refused
in one line naming the file, never a crash, a traceback or GBs of memory."""

import copy
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import commands
import pytest
import torch
from helpers import compose_config

from hyperlab.checkpoints import load_file, read_checkpoint
from hyperlab.errors import DataError
from hyperlab.experiment import build
from hyperlab.start import how_it_starts
from hyperlab.train import train
from hyperlab.training_state import check_training_state

Edit = Callable[[dict], None]


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> Path:
    """A real run of one epoch (Adam, with a StepLR scheduler): its folder, the source of every crafted file."""
    run_dir = tmp_path_factory.mktemp("original") / "run"
    train(compose_config(run_dir, "trainer.max_epochs=1", "logger=none", "scheduler=step"))
    return run_dir


def resume_config(run_dir: Path):
    return compose_config(run_dir, f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", "trainer.max_epochs=3",
                          "logger=none", "scheduler=step")  # fmt: skip


@pytest.fixture(scope="module")
def resumed(original):
    """The checkpoint a resume reads, with the task and trainer the resume builds (not fitted)."""
    cfg = resume_config(original)
    start = how_it_starts(cfg, original)
    experiment = build(cfg, start)
    return start.checkpoint, experiment.task, experiment.trainer


def optimizer_state(key: str, value: object) -> Edit:
    """Every parameter's optimizer state `key` set to `value` (a function of the parameter's state)."""

    def edit(checkpoint: dict) -> None:
        for state in checkpoint["optimizer_states"][0]["state"].values():
            state[key] = value(state) if callable(value) else value

    return edit


def set_in(path: str, value: object) -> Edit:
    """Set `path` (dots; a number is a list index) from the checkpoint's top to `value`."""

    def edit(checkpoint: dict) -> None:
        *parents, last = path.split(".")
        node = checkpoint
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        node[int(last) if last.isdigit() else last] = value

    return edit


def callback_state(key: str, value: object) -> Edit:
    def edit(checkpoint: dict) -> None:
        for state in checkpoint["callbacks"].values():
            state[key] = value

    return edit


def drop(path: str) -> Edit:
    def edit(checkpoint: dict) -> None:
        *parents, last = path.split(".")
        node = checkpoint
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        del node[last]

    return edit


PROGRESS = "loops.fit_loop.epoch_progress.total"
# what a resume restores, crafted -> what the one-line refusal says
STATES: dict[str, tuple[Edit, str]] = {
    "exp_avg of 3 elements": (optimizer_state("exp_avg", torch.zeros(3)), "exp_avg is of shape (3,), not the par"),
    "stride-0 expanded state": (
        optimizer_state("exp_avg_sq", lambda state: torch.zeros(1).expand(state["exp_avg_sq"].shape)),
        "exp_avg_sq is a view with strides (0, 0)",
    ),
    "integer state": (optimizer_state("exp_avg", lambda s: s["exp_avg"].long()), "of torch.int64, not floating"),
    "sparse state": (optimizer_state("exp_avg", lambda s: s["exp_avg"].to_sparse()), "is a sparse_coo tensor"),
    "meta state": (optimizer_state("exp_avg", lambda s: s["exp_avg"].to("meta")), "a tensor on the meta device"),
    "missing state": (
        lambda c: [state.pop("exp_avg") for state in c["optimizer_states"][0]["state"].values()],
        "state[0] holds ['exp_avg_sq', 'step']: this run's optimizer keeps ['exp_avg', 'exp_avg_sq', 'step']",
    ),
    "state of None": (optimizer_state("exp_avg", None), "exp_avg is a NoneType, not a tensor"),
    "step of 3 numbers": (optimizer_state("step", torch.ones(3)), "step is not allowed: expected a step count"),
    "negative step": (optimizer_state("step", torch.tensor(-5.0)), "step is not allowed: expected a step count"),
    "state of no parameter": (set_in("optimizer_states.0.state.99", {}), "state[99] is the state of no parameter"),
    "lr as text": (set_in("optimizer_states.0.param_groups.0.lr", "0.1"), "lr='0.1' is not allowed: expected a fin"),
    "lr infinite": (set_in("optimizer_states.0.param_groups.0.lr", float("inf")), "lr=inf is not allowed"),
    "betas out of range": (set_in("optimizer_states.0.param_groups.0.betas", (1.5, 0.9)), "Invalid beta parameter"),
    "betas of one": (set_in("optimizer_states.0.param_groups.0.betas", (0.9,)), "betas must be a list of 2"),
    "flag another code path": (set_in("optimizer_states.0.param_groups.0.capturable", True), "capturable=True is n"),
    "other parameters": (set_in("optimizer_states.0.param_groups.0.params", [0, 1, 2]), "lists other parameters"),
    "two groups": (
        lambda c: c["optimizer_states"][0]["param_groups"].append(c["optimizer_states"][0]["param_groups"][0]),
        "has 2 parameter groups",
    ),
    "two optimizers": (lambda c: c["optimizer_states"].append(c["optimizer_states"][0]), "holds 2 states: this run"),
    "weights only": (drop("optimizer_states"), "it has no optimizer_states (saved with weights only)"),
    "scheduler step_size=0": (set_in("lr_schedulers.0.step_size", 0), "scheduler.step_size=0 is not allowed"),
    "scheduler gamma as text": (set_in("lr_schedulers.0.gamma", "x"), "gamma='x' is not allowed: expected a finite"),
    "scheduler key that shadows a method": (set_in("lr_schedulers.0.step", 1), "expected the keys"),
    "scheduler base_lrs": (set_in("lr_schedulers.0.base_lrs", []), "base_lrs must be a list of 1"),
    "loop counter as text": (set_in(f"{PROGRESS}.ready", "1"), "ready='1' is not allowed: expected an integer >= 0"),
    "loop counter negative": (set_in(f"{PROGRESS}.ready", -1), "ready=-1 is not allowed"),
    "loop counter of 2**70": (set_in(f"{PROGRESS}.ready", 2**70), "is not allowed: expected an integer >= 0"),
    "loop attribute": (set_in(f"{PROGRESS}.__class__", 1), "expected the keys"),
    "no fit loop": (drop("loops.fit_loop"), "checkpoint.loops has no fit_loop"),
    "batch progress flag": (
        lambda c: c["loops"]["fit_loop"]["epoch_loop.batch_progress"].update(is_last_batch=1),
        "is_last_batch=1 is not allowed: expected true or false",
    ),
    "best score as text": (callback_state("best_model_score", "high"), "best_model_score must be a number"),
    "kth value of 3": (callback_state("kth_value", torch.zeros(3)), "expected a tensor of shape ()"),
    "best_k_models list": (callback_state("best_k_models", {"x.ckpt": [1]}), "best_k_models.x.ckpt must be a num"),
}


@pytest.mark.parametrize("case", list(STATES))
def test_a_resume_refuses_training_states_unlike_its_own_objects(resumed, case):
    checkpoint, task, trainer = resumed
    edit, message = STATES[case]
    crafted = copy.deepcopy(checkpoint)
    edit(crafted)
    with pytest.raises(DataError) as error:
        check_training_state(crafted, "crafted.ckpt", task, trainer)
    assert str(error.value).startswith("crafted.ckpt is refused: ") and "\n" not in str(error.value)
    assert message in str(error.value)


def test_the_real_training_state_is_accepted(resumed):
    checkpoint, task, trainer = resumed
    check_training_state(checkpoint, "last.ckpt", task, trainer)


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def weight(make: Callable[[torch.Tensor], torch.Tensor]) -> Edit:
    def edit(checkpoint: dict) -> None:
        checkpoint["state_dict"]["net.head.weight"] = make(checkpoint["state_dict"]["net.head.weight"])

    return edit


# what any command reads, crafted -> what the one-line refusal says
FILES: dict[str, tuple[Edit, str]] = {
    "quantized weights": (weight(lambda w: torch.quantize_per_tensor(w, 0.1, 0, torch.qint8)), "is a quantized te"),
    "sparse weights": (weight(lambda w: w.to_sparse()), "'net.head.weight'] is a sparse_coo tensor"),
    "meta weights": (weight(lambda w: w.to("meta")), "is a tensor on the meta device"),
    "complex weights": (weight(lambda w: w.to(torch.complex64)), "is a complex tensor"),
    "version garbage": (set_in("pytorch-lightning_version", "garbage"), "pytorch-lightning_version='garbage' is n"),
    "version that Lightning migrates": (set_in("pytorch-lightning_version", "1.5.0"), "2.0.0 or later"),
    "version of 5000 characters": (set_in("pytorch-lightning_version", "1" * 5000), "pytorch-lightning_version='11"),
    "name of 5000 characters": (set_in("hyperlab.config.name", "x" * 5000), "bytes (it names a folder)"),
    "data seed of 2**70": (set_in("hyperlab.config.data.seed", 2**70), "config.data.seed=1180591620717411303424 is"),
    "seed below 0": (set_in("hyperlab.config.seed", -1), "config.seed=-1 is not allowed"),
    "lists 5000 deep": (set_in("hyperlab.config.data.drop", nested(5000)), "nests containers more than 100 deep"),
}


def save(checkpoint: dict, path: Path) -> Path:
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)  # (pickling 5000 nested lists)
    try:
        torch.save(checkpoint, path)
    finally:
        sys.setrecursionlimit(limit)
    return path


@pytest.mark.parametrize("case", list(FILES))
def test_a_checkpoint_holding_what_no_command_can_use_is_refused_in_one_line(original, tmp_path, case):
    edit, message = FILES[case]
    crafted = copy.deepcopy(load_file(original / "checkpoints" / "last.ckpt"))
    edit(crafted)
    path = save(crafted, tmp_path / "crafted.ckpt")
    with pytest.raises(DataError) as error:
        read_checkpoint(path)
    assert str(error.value).startswith(f"{path} is refused: ") and "\n" not in str(error.value)
    assert message in str(error.value)


def deflated_bomb(source: Path, target: Path) -> Path:
    """The checkpoint with its first storage grown to 64 MB of zeros, deflated: a file of about 400 KB."""
    first = True

    def change(entry: zipfile.ZipInfo, data: bytes) -> tuple[bytes, int]:
        nonlocal first
        if "/data/" in entry.filename and first:
            first = False
            return bytes(64 * 2**20), zipfile.ZIP_DEFLATED
        return data, zipfile.ZIP_STORED

    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, "w") as out:
        for entry in archive.infolist():
            data, method = change(entry, archive.read(entry))
            out.writestr(zipfile.ZipInfo(entry.filename), data, compress_type=method)
    return target


def lying_sizes(source: Path, target: Path) -> Path:
    """The checkpoint whose central directory declares 4 GB for its first storage (its entries stored)."""
    data = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as archive:
        entry = next(entry for entry in archive.infolist() if "/data/" in entry.filename)
    name = entry.filename.encode()
    at = data.rindex(b"PK\x01\x02", 0, data.rindex(name))  # its central directory record
    data[at + 24 : at + 28] = (2**32 - 2).to_bytes(4, "little")  # uncompressed size
    target.write_bytes(bytes(data))
    return target


def test_a_file_whose_sizes_its_bytes_cannot_hold_is_refused_before_anything_is_unpacked(original, tmp_path):
    source = original / "checkpoints" / "last.ckpt"
    bomb = deflated_bomb(source, tmp_path / "bomb.ckpt")
    assert bomb.stat().st_size < 2**20
    with pytest.raises(DataError, match=r"bomb.ckpt is refused: its entry '.*/data/0' is compressed"):
        load_file(bomb)
    with pytest.raises(DataError, match=r"lying.ckpt is refused: its entries declare \d+ bytes, more than the file's"):
        load_file(lying_sizes(source, tmp_path / "lying.ckpt"))
    legacy = tmp_path / "legacy.ckpt"  # torch's older format, whose sizes are only checked as it is read
    torch.save(load_file(source), legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(DataError, match="legacy.ckpt is not a readable checkpoint .*not a zip archive"):
        load_file(legacy)


def test_a_symbolic_link_loop_is_refused_by_name(original, tmp_path):
    loop = tmp_path / "loop.ckpt"
    loop.symlink_to(loop)
    with pytest.raises(DataError, match="loop.ckpt is refused: its symbolic links form a loop"):
        read_checkpoint(loop)
    cfg = compose_config(original, f"ckpt_path={loop}", "trainer.max_epochs=3", "logger=none")
    with pytest.raises(DataError, match="loop.ckpt is refused: its symbolic links form a loop"):
        how_it_starts(cfg, original)


def resume_command(run_dir: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "hyperlab", "train", f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
               "trainer.max_epochs=3", "logger=none", "scheduler=step"]  # fmt: skip
    return commands.run(command, capture_output=True, text=True, timeout=300, cwd=run_dir.parent,
                          env={**os.environ, "HYDRA_FULL_ERROR": "0"})  # fmt: skip


def test_a_crafted_resume_stops_in_one_line_and_keeps_the_run_record(original, tmp_path):
    """Before: the fused Adam step wrote past 3-element tensors (SIGSEGV, exit 139) after the old metrics.json had
    been moved to attempts/1/. Now: status 2, one line, and the record where it was."""
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "metrics.json").write_bytes((original / "metrics.json").read_bytes())
    last = run_dir / "checkpoints" / "last.ckpt"
    crafted = load_file(original / "checkpoints" / "last.ckpt")
    STATES["exp_avg of 3 elements"][0](crafted)
    torch.save(crafted, last)
    process = resume_command(run_dir)
    errors = [line for line in process.stderr.splitlines() if line.startswith("error:")]
    assert process.returncode == 2 and len(errors) == 1, process.stderr[-2000:]
    assert f"{last} is refused: checkpoint.optimizer_states[0].state[0].exp_avg is of shape (3,)" in errors[0]
    assert "Traceback" not in process.stderr and not (run_dir / "attempts").exists()
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "completed"
