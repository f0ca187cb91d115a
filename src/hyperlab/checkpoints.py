"""Reading checkpoints safely, and rebuilding a trained task from one.

A checkpoint is data. Every load uses `torch.load(..., weights_only=True)`: tensors, numbers, strings and
containers only, so a file carrying a pickled object that would run code is refused before anything runs. A
checkpoint written by hyperlab also carries `hyperlab.task` (the task's class), `hyperlab.config` (the run's
resolved config) and the task's hyper-parameters; `read_checkpoint` checks all of it before any command uses it:

- a class is one of hyperlab's tasks, or a network, optimizer, scheduler or datamodule that an option of conf/
  names as its `_target_` (hyperlab.classes): a name the file gives is looked up in that list before anything is
  imported, so a file can only pick among the classes hyperlab's own config builds;
- the values passed to a class are checked as the command line's are: the class's own options (names, types,
  whether required: its constructor) and ranges (its `check_options`; see hyperlab.options);
- a Hydra key (`_target_`, `_args_`, ...) anywhere else is refused: nothing in the file is ever instantiated;
- nothing in it chooses where files are written (see hyperlab.evaluate);
- its size: the zip archive torch.save writes is checked from its central directory before anything is unpacked
  (`check_archive`), its weights are dense tensors of real numbers, its values nest at most `MAX_DEPTH` deep.

A resumed run also restores the file's optimizer, scheduler, loop, callback and precision states: `check_training_state`
compares each with the same state of the objects the run has just built, before Lightning restores any of it (an
optimizer state of the wrong shape would make the optimizer's step write past its tensors).
"""

import errno
import inspect
import math
import os
import pickle
import zipfile
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import lightning as L
import torch
from packaging.version import InvalidVersion, Version
from torch import nn

from hyperlab.classes import conf_targets
from hyperlab.config import MAX_SEED, check_stored_network, check_values
from hyperlab.data.messages import quoted
from hyperlab.data.options import CLASS_NAME_CHARACTERS
from hyperlab.errors import ConfigError, DataError
from hyperlab.options import fits
from hyperlab.tasks import TASKS, Task

# the names a checkpoint may give its task's class: `hyperlab.tasks.<Class>` or its module's
TASK_CLASSES = {name: cls for cls in TASKS.values()
                for name in (f"hyperlab.tasks.{cls.__name__}", f"{cls.__module__}.{cls.__qualname__}")}  # fmt: skip
HYDRA_KEYS = ("_target_", "_args_", "_partial_", "_recursive_", "_convert_")
# where a stored `_target_` may stand, and the conf/ group whose classes it may name there (None: any class name,
# as a record only: the trainer, callbacks and loggers of a resumed or evaluated run come from the command line)
CONFIG_TARGETS = {"data._target_": "data", "model._target_": "model", "optimizer._target_": "optimizer",
                  "scheduler._target_": "scheduler", "trainer._target_": None, "callbacks.*._target_": None,
                  "logger.*._target_": None}  # fmt: skip
HPARAM_TARGETS = {"network._target_": "model", "optimizer._target_": "optimizer", "scheduler._target_": "scheduler"}
MAX_DEPTH = 100  # how deep a checkpoint's containers may nest (Lightning's and hyperlab's own go 6 deep)
MAX_NAME_BYTES = 255  # a stored run name becomes a folder's name, which file systems keep under 256 bytes
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
    if "_instantiator" in checkpoint.get("hyper_parameters", {}):
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
    network = hyper_parameters["network"]  # (its size and its weights' bytes, before anything builds it)
    check_stored_network(network, list(network["input_shape"]), path)


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


def refuse_hydra_keys(value: Any, where: str, allowed: dict[str, str | None]) -> None:
    """Refuse a key that asks Hydra to build or call something (`_target_`, `_args_`, ...) anywhere but a
    `_target_` at one of the `allowed` places, naming a class that conf/'s group for that place builds."""
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}.{key}"
            placed, group = place(path, allowed) if key == "_target_" and isinstance(item, str) else (False, None)
            if key in HYDRA_KEYS and not placed:
                raise ConfigError(f"{path} is not allowed: a checkpoint's values are plain data, never something to "
                                  "build or call")  # fmt: skip
            if group is not None and item not in conf_targets(group):
                raise ConfigError(f"{path}={item!r} is not allowed: expected one of {sorted(conf_targets(group))}")
            refuse_hydra_keys(item, path, allowed)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            refuse_hydra_keys(item, f"{where}[{index}]", allowed)


def place(path: str, allowed: dict[str, str | None]) -> tuple[bool, str | None]:
    """Whether a `_target_` may stand at `path`, and the conf/ group whose classes it may name there."""
    root = path.split(".", 1)[1]  # without "config.", "hyper_parameters." or "checkpoint."
    for pattern, group in allowed.items():
        if fnmatch(root, pattern) and root.count(".") == pattern.count("."):
            return True, group
    return False, None


def check_hyper_parameters(cls: type[Task], hyper_parameters: dict[str, Any]) -> None:
    """The task's arguments: its network, optimizer and scheduler as their classes' options, the rest by their types."""
    expected = {name: p.annotation for name, p in inspect.signature(cls.__init__).parameters.items() if name != "self"}
    if set(hyper_parameters) != set(expected):
        raise ConfigError(f"its hyper-parameters must be {sorted(expected)}, not {sorted(hyper_parameters)}")
    network = dict(hyper_parameters["network"]) if isinstance(hyper_parameters["network"], dict) else {}
    shape = network.pop("input_shape", None)
    if not (isinstance(shape, list) and shape and all(type(n) is int and n >= 1 for n in shape)):
        raise ConfigError(f"hyper_parameters.network.input_shape={shape!r} is not allowed: a list of sizes >= 1")
    check_values("model", network)
    check_values("optimizer", hyper_parameters["optimizer"])
    if hyper_parameters["scheduler"]:
        check_values("scheduler", hyper_parameters["scheduler"])
    for name, annotation in expected.items():
        if name not in ("network", "optimizer", "scheduler") and not fits(hyper_parameters[name], annotation):
            raise ConfigError(
                f"hyper_parameters.{name}={hyper_parameters[name]!r} is not allowed: expected {annotation}"
            )
    names = hyper_parameters.get("class_names")
    if names is not None and len(names) != hyper_parameters["num_classes"]:
        raise ConfigError(f"hyper_parameters.class_names has {len(names)} names for num_classes classes")
    for index, name in enumerate(names or []):
        if not isinstance(name, str) or len(name) > CLASS_NAME_CHARACTERS:
            raise ConfigError(f"hyper_parameters.class_names[{index}]={quoted(name)} is not allowed: a class name is "
                              f"a text of at most {CLASS_NAME_CHARACTERS} characters")  # fmt: skip


def check_config(config: dict[str, Any]) -> None:
    """The stored run config: what evaluation takes from it (the data's class and values, the run's name and seed)
    as the command line's are; its other `_target_`s are never used."""
    if not config:
        return
    if not isinstance(config.get("data"), dict):
        raise ConfigError("config.data must be a mapping")
    check_values("data", config["data"])
    name = config.get("name")
    if not isinstance(name, str) or len(name.encode()) > MAX_NAME_BYTES:
        raise ConfigError(f"config.name={str(name)[:80]!r} is not allowed: expected a string of at most "
                          f"{MAX_NAME_BYTES} bytes (it names a folder)")  # fmt: skip
    seeds = {"config.seed": config.get("seed")}
    data = config["data"]
    seeds.update({f"config.data.{key}": data[key] for key in ("seed", "shuffle_seed") if key in data})
    for key, seed in seeds.items():
        if type(seed) is not int or not 0 <= seed <= MAX_SEED:
            raise ConfigError(f"{key}={seed!r} is not allowed: expected an integer from 0 to {MAX_SEED}")


# -- a resume: the training state Lightning restores, against the run's own objects ------------------------------
# the settings by which torch picks how to run an optimizer's step; they change neither its state nor its result
STEP_IMPLEMENTATIONS = ("foreach", "fused", "capturable", "differentiable")


def check_training_state(checkpoint: dict[str, Any], path: str | Path, task: Task, trainer: L.Trainer) -> None:
    """Refuse a checkpoint (read by `read_checkpoint`) that a resume of `task` with `trainer` (both just built, not
    yet fitted) cannot restore: its optimizer, scheduler, loop, callback and precision states must each have the
    structure, keys, types and shapes of the same state of the run's own objects, before Lightning restores them."""
    try:
        optimizers, schedulers = fresh_optimizers(task, trainer)
        for key, own in (("optimizer_states", optimizers), ("lr_schedulers", schedulers)):
            if key not in checkpoint:  # (Lightning's KeyError)
                raise ConfigError(f"it has no {key} (saved with weights only): fine-tune from it instead of resuming")
            if len(checkpoint[key]) != len(own):
                raise ConfigError(f"checkpoint.{key} holds {len(checkpoint[key])} states: this run has {len(own)}")
        for index, (state, optimizer) in enumerate(zip(checkpoint["optimizer_states"], optimizers, strict=True)):
            check_optimizer_state(state, optimizer, f"checkpoint.optimizer_states[{index}]")
        for index, (state, scheduler) in enumerate(zip(checkpoint["lr_schedulers"], schedulers, strict=True)):
            where = f"checkpoint.lr_schedulers[{index}]"
            check_like(state, scheduler.state_dict(), where)
            check_scheduler_settings(state, scheduler, task.scheduler_config, where)
        check_loops(checkpoint.get("loops"), trainer)
        for callback in trainer.callbacks:
            state = checkpoint.get("callbacks", {}).get(callback.state_key)
            if state:  # (what Lightning restores)
                check_like(state, callback.state_dict(), f"checkpoint.callbacks.{type(callback).__name__}")
        precision = type(trainer.precision_plugin).__qualname__
        if precision in checkpoint:
            check_like(checkpoint[precision], trainer.precision_plugin.state_dict(), f"checkpoint.{precision}")
    except ConfigError as error:
        raise DataError(f"{path} is refused: {error}") from None


def fresh_optimizers(task: Task, trainer: L.Trainer) -> tuple[list[torch.optim.Optimizer], list[Any]]:
    """The optimizers and schedulers `task` (not yet fitted) trains with under `trainer` (which the options may depend
    on), built anew as Lightning will build them; hyperlab's tasks give one optimizer, with or without a scheduler."""
    task.trainer = trainer
    try:
        configured = task.configure_optimizers()
    finally:
        task.trainer = None  # (as before: `fit` attaches it)
    if isinstance(configured, torch.optim.Optimizer):
        return [configured], []
    return [configured["optimizer"]], [configured["lr_scheduler"]["scheduler"]]


def check_optimizer_state(state: dict[str, Any], optimizer: torch.optim.Optimizer, where: str) -> None:
    """An optimizer's saved state against `optimizer`'s own: its parameter groups (as many, of the same parameters,
    the same settings, of the right kinds and in the ranges its class takes), and each parameter's state (what this
    optimizer keeps after a step with those settings, each tensor of the parameter's own shape). A group's numbers
    are where training had taken them (a scheduler's learning rate at 0 included): torch's own checks apply."""
    own = optimizer.state_dict()
    if set(state) != set(own) or not isinstance(state["param_groups"], list) or not isinstance(state["state"], dict):
        raise ConfigError(f"{where} must hold `state` (a mapping) and `param_groups` (a list), as torch writes")
    if len(state["param_groups"]) != len(own["param_groups"]):
        raise ConfigError(f"{where} has {len(state['param_groups'])} parameter groups: this run's optimizer has "
                          f"{len(own['param_groups'])}")  # fmt: skip
    parameters = [parameter for group in optimizer.param_groups for parameter in group["params"]]
    for index, (group, own_group) in enumerate(zip(state["param_groups"], own["param_groups"], strict=True)):
        group_where = f"{where}.param_groups[{index}]"
        check_group(group, own_group, group_where)
        kinds = state_kinds(optimizer, group, group_where)
        for number in group["params"]:
            if number in state["state"]:
                check_parameter_state(state["state"][number], parameters[number], kinds, f"{where}.state[{number}]")
    unknown = sorted(set(state["state"]) - {number for group in own["param_groups"] for number in group["params"]})
    if unknown:
        raise ConfigError(f"{where}.state[{unknown[0]!r}] is the state of no parameter of this run's optimizer")


def check_group(group: Any, own: dict[str, Any], where: str) -> None:
    """A parameter group: the keys of the run's own, the same parameters, numbers where it has numbers (of any value
    its checks allow), and its own flags (which pick the code the step runs: a flag the file sets could pick code
    this run's device has not)."""
    if not isinstance(group, dict) or set(group) != set(own):
        keys = sorted(group) if isinstance(group, dict) else type(group).__name__
        raise ConfigError(f"{where} has the keys {keys}: this run's optimizer has {sorted(own)}")
    if group["params"] != own["params"]:
        raise ConfigError(f"{where}.params lists other parameters than this run's optimizer (as many, in order)")
    for key, value in own.items():
        if key == "params":
            continue
        if isinstance(value, (bool, str)) or value is None:
            if group[key] != value or type(group[key]) is not type(value):
                raise ConfigError(f"{where}.{key}={group[key]!r} is not allowed: this run's optimizer has {value!r}")
        else:
            check_like(group[key], value, f"{where}.{key}")


def settings_of(optimizer: torch.optim.Optimizer, group: dict[str, Any]) -> dict[str, Any]:
    """The settings of a saved parameter group that the optimizer's class takes (as a config gives them: lists)."""
    taken = set(inspect.signature(type(optimizer)).parameters) - {"params"}
    return {key: list(value) if isinstance(value, tuple) else value for key, value in group.items() if key in taken}


def state_kinds(optimizer: torch.optim.Optimizer, group: dict[str, Any], where: str) -> dict[str, str]:
    """What a parameter's state holds after a step of `optimizer`'s class with `group`'s settings (which its
    constructor checks) on a probe parameter: per key, "tensor" (of the parameter's shape), "scalar" (the step count)
    or "none"."""
    probe = nn.Parameter(torch.zeros(2, 3))
    settings = {key: value for key, value in settings_of(optimizer, group).items() if key not in STEP_IMPLEMENTATIONS}
    try:
        stepped = type(optimizer)([probe], **settings)
        probe.grad = torch.zeros_like(probe)
        stepped.step()
    except (ValueError, RuntimeError, TypeError) as error:  # torch's own checks of the settings
        raise ConfigError(f"{where}: {str(error).splitlines()[0][:200]}") from None
    kinds = {}
    for key, value in stepped.state[probe].items():
        shaped = isinstance(value, torch.Tensor) and value.shape == probe.shape
        kinds[key] = "tensor" if shaped else "none" if value is None else "scalar"
    return kinds


def check_parameter_state(state: Any, parameter: torch.Tensor, kinds: dict[str, str], where: str) -> None:
    """One parameter's optimizer state ({} before its first step): the keys `kinds` names; each tensor dense, real,
    in memory, of exactly the parameter's shape and not overlapping itself (a step writes it in place: a smaller or
    expanded one would be written past its end); the step count one finite number >= 0."""
    if not isinstance(state, dict) or (state and set(state) != set(kinds)):
        keys = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise ConfigError(f"{where} holds {keys}: this run's optimizer keeps {sorted(kinds)}")
    for key, value in state.items():
        kind, at = kinds[key], f"{where}.{key}"
        if kind == "none" and value is not None:
            raise ConfigError(f"{at} must be empty (None) with these settings")
        if kind == "scalar":
            number = value.item() if isinstance(value, torch.Tensor) and value.shape == () else value
            if not is_number(number) or number < 0 or (isinstance(value, torch.Tensor) and tensor_problem(value)):
                raise ConfigError(f"{at} is not allowed: expected a step count, one number >= 0")
        if kind == "tensor":
            problem = "" if isinstance(value, torch.Tensor) else f"a {type(value).__name__}, not a tensor"
            problem = problem or tensor_problem(value)
            if not problem and value.shape != parameter.shape:
                problem = f"of shape {tuple(value.shape)}, not the parameter's {tuple(parameter.shape)}"
            if not problem and not value.is_floating_point():
                problem = f"of {value.dtype}, not floating point"
            if not problem and not value.is_contiguous():  # (an expanded, stride-0 one shares its elements)
                problem = f"a view with strides {value.stride()} (its elements overlap or have gaps)"
            if problem:
                raise ConfigError(f"{at} is {problem}")


def check_scheduler_settings(state: dict[str, Any], scheduler: Any, config: dict[str, Any], where: str) -> None:
    """The saved settings of a scheduler (the ones its class takes), in the ranges hyperlab allows them."""
    taken = inspect.signature(type(scheduler)).parameters
    settings = {key: value for key, value in state.items() if key in taken}
    try:
        check_values("scheduler", {"_target_": config["_target_"], **settings})
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None


def check_loops(loops: Any, trainer: L.Trainer) -> None:
    """Lightning's loops' progress (the fit loop's is what a resume restores), like the run's own loops'."""
    if loops is None:
        return
    own = {"fit_loop": trainer.fit_loop, "validate_loop": trainer.validate_loop, "test_loop": trainer.test_loop,
           "predict_loop": trainer.predict_loop}  # fmt: skip
    if "fit_loop" not in loops:
        raise ConfigError("checkpoint.loops has no fit_loop")
    for name, loop in own.items():
        if name in loops:
            check_like(loops[name], loop.state_dict(), f"checkpoint.loops.{name}")


def check_like(value: Any, own: Any, where: str) -> None:
    """`value` (from the file) has the structure of `own`, the same state of the run's own object: mappings with its
    keys, sequences of its length, integers >= 0, finite numbers, text and flags where it has them, tensors of its
    shape. Where `own` holds nothing yet (None, or an empty mapping a run fills as it goes: a ModelCheckpoint's best
    score and its best_k_models), a number or a one-number tensor."""
    if isinstance(own, dict) and own:
        if not isinstance(value, dict) or set(value) != set(own):
            keys = sorted(map(str, value)) if isinstance(value, dict) else type(value).__name__
            raise ConfigError(f"{where} holds {keys}: expected the keys {sorted(own)}")
        for key, item in own.items():
            check_like(value[key], item, f"{where}.{key}")
    elif isinstance(own, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping")
        for key, item in value.items():
            check_scalar(item, f"{where}.{key}")
    elif own is None:
        if value is not None:
            check_scalar(value, where)
    elif isinstance(own, (list, tuple)):
        if not isinstance(value, (list, tuple)) or len(value) != len(own):
            raise ConfigError(f"{where} must be a list of {len(own)}")
        for index, (item, own_item) in enumerate(zip(value, own, strict=True)):
            check_like(item, own_item, f"{where}[{index}]")
    elif not same_kind(value, own):
        shown = f"a {type(value).__name__}" if isinstance(value, (torch.Tensor, dict, list)) else repr(value)[:80]
        raise ConfigError(f"{where}={shown} is not allowed: expected {kind_name(own)}")


def same_kind(value: Any, own: Any) -> bool:
    """Whether a saved value is of the kind of `own` (a flag, an integer, a number, a text, a tensor)."""
    if isinstance(own, (bool, str)):
        return type(value) is type(own)
    if isinstance(own, int):
        return type(value) is int and 0 <= value < 2**63
    if isinstance(own, float):
        return is_number(value)
    if isinstance(own, torch.Tensor):
        return (isinstance(value, torch.Tensor) and value.shape == own.shape and not tensor_problem(value)
                and value.is_floating_point() == own.is_floating_point())  # fmt: skip
    return False


def kind_name(own: Any) -> str:
    if isinstance(own, torch.Tensor):
        return f"a tensor of shape {tuple(own.shape)}" + (" of floating point" if own.is_floating_point() else "")
    names = {bool: "true or false", int: "an integer >= 0", float: "a finite number", str: "a text"}
    return names.get(type(own), f"a {type(own).__name__}")


def check_scalar(value: Any, where: str) -> None:
    if not (is_number(value) or is_one_number(value)):
        raise ConfigError(f"{where} must be a number or a one-number tensor")


def is_number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def is_one_number(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.numel() == 1 and not tensor_problem(value)


def task_class(checkpoint: dict[str, Any], path: str | Path) -> type[Task]:
    """The task class a hyperlab checkpoint names, looked up among hyperlab's own tasks (nothing is imported)."""
    name = checkpoint.get("hyperlab", {}).get("task")
    cls = TASK_CLASSES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise DataError(
            f"{path} was not written by hyperlab-train: its task {name!r} is not one of {sorted(TASK_CLASSES)}"
        )
    return cls


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
    the datamodule's class name, which the run config's `data._target_` ends with."""
    target = str(stored_config(checkpoint).get("data", {}).get("_target_", ""))
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
