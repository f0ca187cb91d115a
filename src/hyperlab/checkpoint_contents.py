"""What a hyperlab checkpoint holds besides its weights, in the form new ones store, and the checks of what any holds.

A checkpoint names the network, optimizer, scheduler and data of its run by their option of conf/<group>/:
`network={"option": "mlp", "hidden": 16, ..., "input_shape": [2]}`, `optimizer={"option": "adam", "lr": 0.01}`,
and the run config's `data`, `model`, `optimizer` and `scheduler` likewise (`stored_run_config`). The class comes
from that option's YAML file, never from the file (hyperlab.classes). The run config's trainer, callbacks and loggers
are kept as a record of their values, without a `_target_`: an evaluation builds its own from its command line.

A run config whose data names a class no option of conf/data/ builds (one's own datamodule given by `data._target_`)
is stored as it is, `_target_` included: there is no option to name, and refusing to save would lose the run. Such a
file, like a checkpoint of an earlier version (every node with its `_target_`), is read with the checks that version
had: a `_target_` stands only where a class is built, and names a class an option of conf/ builds.
"""

import inspect
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from hyperlab.classes import conf_targets, option_form, target_form
from hyperlab.config import MAX_SEED
from hyperlab.data.messages import quoted
from hyperlab.data.options import CLASS_NAME_CHARACTERS
from hyperlab.errors import ConfigError, DataError
from hyperlab.library_checks import check_values
from hyperlab.options import fits
from hyperlab.schemas import BUILT_GROUPS
from hyperlab.tasks import TASKS, Task

# the names a checkpoint may give its task: its kind (`classification`, as this version writes), or, in a file of an
# earlier version, its class as `hyperlab.tasks.<Class>` or its module's path (looked up here, never imported)
TASK_CLASSES = {**TASKS, **{name: cls for cls in TASKS.values()
                for name in (f"hyperlab.tasks.{cls.__name__}", f"{cls.__module__}.{cls.__qualname__}")}}  # fmt: skip
HYDRA_KEYS = ("_target_", "_args_", "_partial_", "_recursive_", "_convert_")
# where a stored `_target_` may stand, and the conf/ group whose classes it may name there (None: any class name,
# as a record only: the trainer, callbacks and loggers of a resumed or evaluated run come from the command line)
CONFIG_TARGETS = {"data._target_": "data", "model._target_": "model", "optimizer._target_": "optimizer",
                  "scheduler._target_": "scheduler", "trainer._target_": None, "callbacks.*._target_": None,
                  "logger.*._target_": None}  # fmt: skip
HPARAM_GROUPS = {"network": "model", "optimizer": "optimizer", "scheduler": "scheduler"}  # their conf/ groups
HPARAM_TARGETS = {f"{name}._target_": group for name, group in HPARAM_GROUPS.items()}  # (an earlier version's files)
MAX_NAME_BYTES = 255  # a stored run name becomes a folder's name, which file systems keep under 256 bytes


def stored_run_config(config: dict[str, Any]) -> dict[str, Any]:
    """A run's resolved config (plain values) as its checkpoints store it: the groups that build a class by their
    option (`option_form`), the trainer, callbacks and loggers without Hydra's keys (`without_target`)."""
    stored = dict(config)
    for group in BUILT_GROUPS:
        if isinstance(stored.get(group), dict):
            stored[group] = option_form(group, stored[group])
    if isinstance(stored.get("trainer"), dict):
        stored["trainer"] = without_target(stored["trainer"])
    for group in ("callbacks", "logger"):
        if isinstance(stored.get(group), dict):
            stored[group] = {name: without_target(node) for name, node in stored[group].items()}
    return stored


def without_target(node: Any) -> Any:
    """A config node as a record of its values: without Hydra's keys (`_target_`, ...) at any depth (a callback's
    settings may hold a node Hydra builds: the Optuna pruning callback's study and its pruner)."""
    if isinstance(node, dict):
        return {key: without_target(value) for key, value in node.items() if key not in HYDRA_KEYS}
    return [without_target(item) for item in node] if isinstance(node, list) else node


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


def stored_node(group: str, values: Any, where: str) -> dict[str, Any]:
    """A stored mapping that builds a class of conf/<group>/, with the `_target_` its option names (`target_form`);
    a ConfigError naming `where` if it is not a mapping, or names no option of the group."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a mapping")
    return target_form(group, values, where)


def check_hyper_parameters(cls: type[Task], hyper_parameters: dict[str, Any]) -> None:
    """The task's arguments: its network, optimizer and scheduler as their classes' options, the rest by their types."""
    expected = {name: p.annotation for name, p in inspect.signature(cls.__init__).parameters.items() if name != "self"}
    if set(hyper_parameters) != set(expected):
        raise ConfigError(f"its hyper-parameters must be {sorted(expected)}, not {sorted(hyper_parameters)}")
    network = stored_node("model", hyper_parameters["network"], "hyper_parameters.network")
    shape = network.pop("input_shape", None)
    if not (isinstance(shape, list) and shape and all(type(n) is int and n >= 1 for n in shape)):
        raise ConfigError(f"hyper_parameters.network.input_shape={shape!r} is not allowed: a list of sizes >= 1")
    check_values("model", network)
    check_values("optimizer", stored_node("optimizer", hyper_parameters["optimizer"], "hyper_parameters.optimizer"))
    if hyper_parameters["scheduler"]:
        check_values("scheduler", stored_node("scheduler", hyper_parameters["scheduler"], "hyper_parameters.scheduler"))
    for name, annotation in expected.items():
        if name not in HPARAM_GROUPS and not fits(hyper_parameters[name], annotation):
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
    as the command line's are, and the options its model, optimizer and scheduler name; its other values are a
    record, never used."""
    if not config:
        return
    data = stored_node("data", config.get("data"), "config.data")
    check_values("data", data)
    for group in ("model", "optimizer", "scheduler"):
        if isinstance(config.get(group), dict):
            target_form(group, config[group], f"config.{group}")
    name = config.get("name")
    if not isinstance(name, str) or len(name.encode()) > MAX_NAME_BYTES:
        raise ConfigError(f"config.name={str(name)[:80]!r} is not allowed: expected a string of at most "
                          f"{MAX_NAME_BYTES} bytes (it names a folder)")  # fmt: skip
    seeds = {"config.seed": config.get("seed")}
    seeds.update({f"config.data.{key}": data[key] for key in ("seed", "shuffle_seed") if key in data})
    for key, seed in seeds.items():
        if type(seed) is not int or not 0 <= seed <= MAX_SEED:
            raise ConfigError(f"{key}={seed!r} is not allowed: expected an integer from 0 to {MAX_SEED}")


def task_class(checkpoint: dict[str, Any], path: str | Path) -> type[Task]:
    """The task class a hyperlab checkpoint names (its kind), looked up among hyperlab's own tasks."""
    name = checkpoint.get("hyperlab", {}).get("task")
    cls = TASK_CLASSES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise DataError(
            f"{path} was not written by hyperlab-train: its task {name!r} is not one of {sorted(TASK_CLASSES)}"
        )
    return cls
