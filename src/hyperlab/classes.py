"""Which classes a config may build, and how a config node names one.

A class may be built from a config when an option of `conf/<group>/` names it as its `_target_` (the config tree
is the list: adding a network or a datamodule is its module plus its YAML file; a config folder the entry point
registers with `use_config_folders`, from `hydra.searchpath`, counts too).

A checkpoint names its network, optimizer, scheduler and data by their option, `{"option": "mlp", "hidden": 16}`
(`option_form`): the class is the `_target_` of conf/<group>/mlp.yaml, never a name read from the file
(`target_form`). Checkpoints of earlier versions name the class, `{"_target_": "hyperlab.networks.MLP", ...}`:
such a name is looked up in the same list before anything is imported (importing a module a file names could
itself run code).
"""

import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hydra.utils import get_class
from omegaconf import OmegaConf

from hyperlab.errors import ConfigError, first_line

OPTION_KEY = "option"  # where a stored config node names its option of conf/<group>/, in place of a `_target_`


def _find_conf_dir() -> Path:
    """The config tree: inside the package when installed from a wheel, else the repository's `conf/`."""
    packaged = Path(__file__).parent / "conf"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "conf"


CONF_DIR = _find_conf_dir()
# The config folders besides CONF_DIR whose options count (`hydra.searchpath`): set by the entry point, which alone
# reads Hydra's runtime config (`use_config_folders`); () outside a Hydra command.
CONFIG_FOLDERS: tuple[Path, ...] = ()


def use_config_folders(folders: Iterable[Path]) -> None:
    """Count the options of these config folders too (the entry point passes its `hydra.searchpath` folders: Hydra's
    `runtime.config_sources` of schema "file"); CONF_DIR itself is always counted and left out if given."""
    global CONFIG_FOLDERS
    own = CONF_DIR.resolve()
    CONFIG_FOLDERS = tuple(dict.fromkeys(Path(f) for f in folders if Path(f).resolve() != own))


def conf_dirs() -> tuple[Path, ...]:
    """hyperlab's config tree, then the folders registered with `use_config_folders`."""
    return (CONF_DIR, *CONFIG_FOLDERS)


def conf_targets(group: str) -> dict[str, str]:
    """The classes the options of `conf/<group>/` build: `{_target_: the option's name}` (the option named like the
    class when several build it: mnist.yaml, not fashion_mnist.yaml, for MNISTDataModule)."""
    return _targets(group, conf_dirs())


def conf_options(group: str) -> dict[str, str]:
    """The options of `conf/<group>/` that build a class: `{option's name: its _target_}` (a name in an earlier
    folder of `conf_dirs` first)."""
    return _options(group, conf_dirs())


@functools.cache
def _options(group: str, folders: tuple[Path, ...]) -> dict[str, str]:
    found: dict[str, str] = {}
    for folder in folders:
        for path in sorted((folder / group).glob("*.yaml")):
            target = OmegaConf.load(path).get("_target_")
            if isinstance(target, str):
                found.setdefault(path.stem, target)
    return found


@functools.cache
def _targets(group: str, folders: tuple[Path, ...]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, target in sorted(_options(group, folders).items()):
        if target not in found or name.replace("_", "") in target.lower():
            found[target] = name
    return found


def option_form(group: str, values: dict[str, Any]) -> dict[str, Any]:
    """A config node as a checkpoint stores it: its `_target_` replaced by the name of the option of
    `conf/<group>/` that builds the class (`{"option": "mlp", ...}`); as it is when no option builds the class (a
    run's own datamodule: the file names it, and reading the file refuses it unless an option does by then)."""
    if "_target_" not in values or values["_target_"] not in conf_targets(group):
        return dict(values)
    rest = {key: value for key, value in values.items() if key != "_target_"}
    return {OPTION_KEY: conf_targets(group)[values["_target_"]], **rest}


def target_form(group: str, values: dict[str, Any], where: str | None = None) -> dict[str, Any]:
    """A stored config node with the `_target_` of the option it names (`{"option": "mlp"}`: conf/model/mlp.yaml's),
    or as it is when it names its class (an earlier version's checkpoint); a ConfigError naming `<where>.option`
    for an option that builds nothing, or a node that names both."""
    if OPTION_KEY not in values:
        return dict(values)
    where = where or group
    if "_target_" in values:
        raise ConfigError(f"{where} names both an option and a _target_: a stored config names its option only")
    name, options = values[OPTION_KEY], conf_options(group)
    if not isinstance(name, str) or name not in options:
        raise ConfigError(f"{where}.{OPTION_KEY}={str(name)[:80]!r} is not allowed: expected one of {sorted(options)}")
    rest = {key: value for key, value in values.items() if key != OPTION_KEY}
    return {"_target_": options[name], **rest}


def stored_option(group: str, values: dict[str, Any]) -> str:
    """The option of conf/<group>/ a checked stored node builds: the one it names, or the one that builds its
    `_target_` (an earlier version's checkpoint)."""
    return values[OPTION_KEY] if OPTION_KEY in values else conf_targets(group)[values["_target_"]]


def stored_target(group: str, values: Any) -> str | None:
    """The class a stored node names, as text (nothing is imported): its option's `_target_`, or its own; None for a
    node that names none (or an option that builds nothing)."""
    try:
        target = target_form(group, values).get("_target_") if isinstance(values, dict) else None
    except ConfigError:
        return None
    return target if isinstance(target, str) else None


def trusted_target(group: str, target: Any) -> str:
    """`target`, if an option of `conf/<group>/` builds the class it names (nothing is imported); else a ConfigError
    naming the key."""
    allowed = conf_targets(group)
    if not isinstance(target, str) or target not in allowed:
        raise ConfigError(f"{group}._target_={target!r} is not allowed: expected one of {sorted(allowed)}")
    return target


def trusted_class(group: str, target: Any) -> type:
    """The class `target` names, if an option of `conf/<group>/` builds it; else a ConfigError naming the key."""
    return get_class(trusted_target(group, target))


def config_class(group: str, values: dict[str, Any]) -> type:
    """The class a config node builds, by its option (`{"option": "adam"}`) or its `_target_` (which an option of
    `conf/<group>/` must build); a ConfigError naming the key otherwise."""
    return trusted_class(group, target_form(group, values).get("_target_"))


def importable_class(group: str, target: Any) -> type:
    """The class a run's own config names (which may be any), or a ConfigError naming the key."""
    try:
        return get_class(target)
    except Exception as error:  # noqa: BLE001 - a missing module or attribute, or not a class
        reason = first_line(error.__cause__ or error)
        raise ConfigError(f"{group}._target_={target!r} is not a class that can be imported ({reason})") from None


def build_trusted(config: dict[str, Any], group: str, **kwargs: Any) -> Any:
    """Call the class `config` names (by its option of conf/<group>/, or a `_target_` one of them builds) with the
    rest of `config` and `kwargs` as keyword arguments. Nested values are passed as they are, never instantiated."""
    options = {key: value for key, value in config.items() if key not in (OPTION_KEY, "_target_")}
    return config_class(group, config)(**options, **kwargs)
