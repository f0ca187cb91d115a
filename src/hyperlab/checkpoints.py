"""Reading checkpoints safely, and rebuilding a trained task from one.

A checkpoint is data. Every load uses `torch.load(..., weights_only=True)`: tensors, numbers, strings and
containers only, so a file carrying a pickled object that would run code is refused before anything runs. A
checkpoint written by hyperlab also carries `hyperlab.task` (the task's class), `hyperlab.config` (the run's
resolved config) and the task's hyper-parameters; `read_checkpoint` checks all of it before any command uses it:

- a class is one of hyperlab's tasks, or a network, optimizer, scheduler or datamodule named by its option of
  conf/<group>/ (the class is that option's `_target_`), or, in a checkpoint of an earlier version, by a `_target_`
  that an option of conf/ builds (hyperlab.checkpoint_contents): a name the file gives is looked up in that list
  before anything is imported, so a file can only pick among the classes hyperlab's own config builds;
- the values passed to a class are checked as the command line's are: the class's own options (names, types,
  whether required: its constructor) and ranges (its `check_options`; see hyperlab.options);
- a Hydra key (`_target_`, `_args_`, ...) anywhere else is refused: nothing in the file is ever instantiated;
- nothing in it chooses where files are written (see hyperlab.evaluate);
- its size: the zip archive torch.save writes is checked from its central directory before anything is unpacked
  (`check_archive`), its weights are dense tensors of real numbers, its values nest at most `MAX_DEPTH` deep.

A resumed run also restores the file's optimizer, scheduler, loop, callback and precision states:
hyperlab.training_state compares each with the same state of the objects the run has just built.
"""

import errno
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from packaging.version import InvalidVersion, Version
from torch import nn

from hyperlab.checkpoint_contents import (
    CONFIG_TARGETS,
    HPARAM_TARGETS,
    check_config,
    check_hyper_parameters,
    refuse_hydra_keys,
    stored_node,
    task_class,
)
from hyperlab.classes import stored_target
from hyperlab.compat import INSTANTIATOR_KEY
from hyperlab.errors import ConfigError, DataError
from hyperlab.network_checks import check_stored_network
from hyperlab.tasks import Task

MAX_DEPTH = 100  # how deep a checkpoint's containers may nest (Lightning's and hyperlab's own go 6 deep)
# Lightning migrates the structure of a checkpoint written before its newest migration (2.0.0), expecting what that
# version wrote; every hyperlab checkpoint was written by a later one
OLDEST_LIGHTNING = Version("2.0.0")


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The hyperlab checkpoint at `path` as checked plain data, or a DataError that names the file and says what
    is wrong (in one line)."""
    checkpoint = load_file(path)
    check_contents(checkpoint, path)
    return checkpoint


def load_file(path: str | Path) -> dict[str, Any]:
    """The Lightning checkpoint at `path` as plain data (tensors, numbers, strings, containers)."""
    path = Path(path)
    refuse_link_loop(path)
    if not path.is_file():
        raise DataError(f"no checkpoint file at {path}")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty: not a checkpoint")
    check_archive(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        detail = str(error).split("Unsupported global:")[-1].split(".")[0].strip() if "global" in str(error) else ""
        raise DataError(
            f"{path} holds pickled Python objects{f' ({detail})' if detail else ''} that could run code when "
            "loaded: refused, nothing in it was run"
        ) from None
    except Exception as error:  # noqa: BLE001 - truncated, corrupt or foreign files fail in many ways
        reason = repr(error)[:200]
        raise DataError(f"{path} is not a readable checkpoint (truncated, or not a PyTorch file): {reason}") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise DataError(f"{path} is a PyTorch file but not a Lightning checkpoint (it has no state_dict)")
    if INSTANTIATOR_KEY in checkpoint.get("hyper_parameters", {}):
        raise DataError(f"{path} asks to be built by an instantiator of its own: refused (hyperlab never writes one)")
    return checkpoint


def refuse_link_loop(path: Path) -> None:
    """A path whose symbolic links lead back to themselves names no file: say so (pathlib calls it missing)."""
    try:
        os.stat(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise DataError(f"{path} is refused: its symbolic links form a loop, it names no file") from None


def check_archive(path: Path) -> None:
    """A checkpoint is the zip archive torch.save writes, whose entries it stores as they are: refuse, from the
    archive's central directory and before anything is unpacked, an entry that is compressed or sizes past the file's
    bytes (a few MB that would inflate to GBs). torch then checks each tensor's storage against its entry's size."""
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
        raise DataError(f"{path} is not a readable checkpoint (truncated, or not a PyTorch file): not a zip "
                        "archive, the format torch.save writes") from None  # fmt: skip
    compressed = [entry.filename for entry in entries if entry.compress_type != zipfile.ZIP_STORED]
    if compressed:
        raise DataError(f"{path} is refused: its entry {compressed[0][:80]!r} is compressed, which torch.save never "
                        f"does (it could unpack to far more than the file's {size} bytes)")  # fmt: skip
    declared = sum(entry.file_size for entry in entries)
    if declared > size:
        raise DataError(f"{path} is refused: its entries declare {declared} bytes, more than the file's {size}")


def check_contents(checkpoint: dict[str, Any], path: str | Path) -> None:
    """Refuse a checkpoint whose hyperlab record, hyper-parameters or stored config is not plain data that
    hyperlab's own classes accept, with their options' checks."""
    record = checkpoint.get("hyperlab")
    if not isinstance(record, dict):
        raise DataError(f"{path} was not written by hyperlab-train (it has no hyperlab record)")
    cls = task_class(checkpoint, path)
    hyper_parameters = checkpoint.get("hyper_parameters")
    config = record.get("config", {})
    try:
        if not isinstance(hyper_parameters, dict) or not isinstance(config, dict):
            raise ConfigError("its hyper-parameters and config must be mappings")
        refuse_non_plain(checkpoint, "checkpoint")
        check_structure(checkpoint)
        refuse_hydra_keys(hyper_parameters, "hyper_parameters", HPARAM_TARGETS)
        refuse_hydra_keys(config, "config", CONFIG_TARGETS)
        rest = {k: v for k, v in checkpoint.items() if k not in ("state_dict", "hyper_parameters", "hyperlab")}
        refuse_hydra_keys(rest, "checkpoint", {})  # the datamodule's state, Lightning's loops and callbacks
        check_hyper_parameters(cls, hyper_parameters)
        check_config(config)
        metrics = record.get("metrics", {})
        if not isinstance(metrics, dict) or not all(isinstance(v, (int, float)) for v in metrics.values()):
            raise ConfigError("hyperlab.metrics must map names to numbers")
    except ConfigError as error:
        raise DataError(f"{path} is refused: {error}") from None
    network = stored_node("model", hyper_parameters["network"], "network")  # (checked above: its option's class)
    check_stored_network(network, list(network["input_shape"]), path)  # its size and weights, before it is built


PLAIN = (dict, list, tuple, str, int, float, bool, type(None), torch.Tensor)


def refuse_non_plain(value: Any, where: str, depth: int = 0) -> None:
    """Refuse anything but containers, text, numbers and tensors (`weights_only` also lets a few allow-listed classes
    and functions through as values: a scheduler's restored state could shadow its methods with them), containers
    nested more than MAX_DEPTH deep, and text that OmegaConf would resolve (`${...}` calls a resolver)."""
    if depth > MAX_DEPTH:
        raise ConfigError(f"{where[:100]}... nests containers more than {MAX_DEPTH} deep: a checkpoint's values don't")
    if not isinstance(value, PLAIN) or isinstance(value, type):
        raise ConfigError(f"{where} holds a {type(value).__name__}: a checkpoint holds plain values only")
    if isinstance(value, str) and "${" in value:
        raise ConfigError(f"{where}={value!r} is not allowed: an interpolation (${{...}}) would be resolved")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise ConfigError(f"{where} has a key of type {type(key).__name__}")
            if where != "checkpoint.state_dict":  # tensors by name, checked in check_structure
                refuse_non_plain(item, f"{where}.{key}", depth + 1)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            refuse_non_plain(item, f"{where}[{index}]", depth + 1)


def check_structure(checkpoint: dict[str, Any]) -> None:
    """The parts Lightning and hyperlab read outside the classes' options: their types."""
    if type(checkpoint.get("epoch")) is not int or checkpoint["epoch"] < 0:
        raise ConfigError(f"checkpoint.epoch={checkpoint.get('epoch')!r} is not allowed: an integer >= 0")
    if type(checkpoint.get("global_step", 0)) is not int:
        raise ConfigError("checkpoint.global_step must be an integer")
    check_version(checkpoint.get("pytorch-lightning_version"))
    state = checkpoint["state_dict"]
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ConfigError("checkpoint.state_dict must map parameter names to tensors")
    for name, tensor in state.items():
        problem = tensor_problem(tensor)
        if problem:
            raise ConfigError(f"checkpoint.state_dict[{name[:80]!r}] is {problem}: weights are dense tensors of real "
                              "numbers in memory")  # fmt: skip
    for key in ("loops", "callbacks"):
        if not isinstance(checkpoint.get(key, {}), dict) or not all(
            isinstance(v, dict) for v in checkpoint.get(key, {}).values()
        ):
            raise ConfigError(f"checkpoint.{key} must map names to mappings")
    for key in ("optimizer_states", "lr_schedulers"):
        if not isinstance(checkpoint.get(key, []), list) or not all(
            isinstance(v, dict) for v in checkpoint.get(key, [])
        ):
            raise ConfigError(f"checkpoint.{key} must be a list of mappings")


def check_version(version: Any) -> None:
    """The Lightning version that wrote the file, which Lightning reads to decide how to migrate it."""
    try:
        ok = isinstance(version, str) and len(version) <= 40 and Version(version) >= OLDEST_LIGHTNING
    except InvalidVersion:
        ok = False
    if not ok:
        raise ConfigError(f"checkpoint.pytorch-lightning_version={str(version)[:80]!r} is not allowed: expected the "
                          f"version of Lightning that wrote it, {OLDEST_LIGHTNING} or later")  # fmt: skip


def tensor_problem(tensor: torch.Tensor) -> str:
    """What keeps `tensor` from being an ordinary tensor in this process's memory ("" if nothing): a sparse, quantized
    or meta one (whose data is nowhere) fails where a dense one is copied or stepped, a complex one where a real one
    is expected."""
    if tensor.layout != torch.strided:
        return f"a {str(tensor.layout).removeprefix('torch.')} tensor"
    if tensor.is_quantized:
        return "a quantized tensor"
    if tensor.device.type != "cpu":
        return f"a tensor on the {tensor.device.type} device"
    return "a complex tensor" if tensor.is_complex() else ""


def task_from(checkpoint: dict[str, Any], path: str | Path) -> Task:
    """The trained task of a checkpoint already read (by `read_checkpoint`). Its network reads no pretrained weights
    file (model=torchvision): the checkpoint's weights are what it runs with."""
    from hyperlab.networks.pretrained import from_checkpoint  # (torchvision's models: imported when one is rebuilt)

    cls = task_class(checkpoint, path)
    try:
        with from_checkpoint():
            task = cls(**checkpoint["hyper_parameters"])
    except (TypeError, ValueError, KeyError) as error:
        raise DataError(f"{path}: its hyper-parameters do not build a {cls.__name__}: {error}") from None
    load_weights(task, checkpoint["state_dict"], str(path))
    return task.eval()


def stored_config(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The run config a checkpoint carries (checked by `read_checkpoint`), {} for one that carries none."""
    return checkpoint["hyperlab"].get("config", {})


def data_state(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """What the run's datamodule fitted and kept (a table's preprocessing), {} if nothing. Lightning files it under
    the datamodule's class name, which the `_target_` of the run config's data option (or its own) ends with."""
    target = stored_target("data", stored_config(checkpoint).get("data", {})) or ""
    state = checkpoint.get(target.rsplit(".", 1)[-1], {})
    return state if isinstance(state, dict) else {}


def load_weights(
    module: nn.Module, state_dict: dict[str, torch.Tensor], source: str, skip: tuple[str, ...] = ()
) -> None:
    """Copy `state_dict` into `module` (but the parameters whose names start with one of `skip`: a new head)."""
    check_fits(module, state_dict, source, skip)
    module.load_state_dict({k: v for k, v in state_dict.items() if not k.startswith(skip)}, strict=not skip)


def check_fits(module: nn.Module, state_dict: dict[str, torch.Tensor], source: str, skip: tuple[str, ...] = ()) -> None:
    """Raise a ConfigError that says which parameters don't fit: names, and shapes where both have one."""
    own = {k: v for k, v in module.state_dict().items() if not k.startswith(skip)}
    theirs = {k: v for k, v in state_dict.items() if not k.startswith(skip)}
    missing = sorted(own.keys() - theirs.keys())
    unexpected = sorted(theirs.keys() - own.keys())
    wrong_shape = [
        f"{k}: checkpoint {tuple(theirs[k].shape)}, model {tuple(own[k].shape)}"
        for k in sorted(own.keys() & theirs.keys())
        if own[k].shape != theirs[k].shape
    ]
    if missing or unexpected or wrong_shape:
        problems = [f"shapes differ for {', '.join(wrong_shape)}"] if wrong_shape else []
        problems += [f"not in the checkpoint: {', '.join(missing)}"] if missing else []
        problems += [f"not in the model: {', '.join(unexpected)}"] if unexpected else []
        raise ConfigError(f"the checkpoint {source} does not fit this model: " + "; ".join(problems))


def check_inputs_fit(network: dict[str, Any], input_shape: list[int], source: str | Path) -> None:
    """A trained network takes the inputs it was trained on: refuse data whose inputs have another shape."""
    if list(network["input_shape"]) != list(input_shape):
        raise ConfigError(
            f"{source} was trained on inputs of shape {network['input_shape']}; this data's are {list(input_shape)}"
        )
