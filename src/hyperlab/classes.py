"""Which classes a config may build, and how a `_target_` becomes one.

A class may be built from a config when an option of `conf/<group>/` names it as its `_target_` (the config tree
is the list: adding a network or a datamodule is its module plus its YAML file; a config folder given with
`hydra.searchpath` counts too). A name read from a checkpoint is looked up in that list before anything is
imported: importing a module a file names could itself run code.
"""

import functools
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_class
from omegaconf import OmegaConf

from hyperlab.errors import ConfigError, first_line


def _find_conf_dir() -> Path:
    """The config tree: inside the package when installed from a wheel, else the repository's `conf/`."""
    packaged = Path(__file__).parent / "conf"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "conf"


CONF_DIR = _find_conf_dir()


def conf_dirs() -> tuple[Path, ...]:
    """hyperlab's config tree, then the folders a running Hydra app was given with `hydra.searchpath`."""
    extra: list[Path] = []
    if HydraConfig.initialized():
        for source in HydraConfig.get().runtime.config_sources:
            folder = Path(source.path)
            if source.schema == "file" and folder.resolve() != CONF_DIR.resolve():
                extra.append(folder)
    return (CONF_DIR, *extra)


def conf_targets(group: str) -> dict[str, str]:
    """The classes the options of `conf/<group>/` build: `{_target_: the option's name}` (the option named like the
    class when several build it: mnist.yaml, not fashion_mnist.yaml, for MNISTDataModule)."""
    return _targets(group, conf_dirs())


@functools.cache
def _targets(group: str, folders: tuple[Path, ...]) -> dict[str, str]:
    found: dict[str, str] = {}
    paths = [path for folder in folders for path in (folder / group).glob("*.yaml")]
    for path in sorted(paths, key=lambda p: p.stem):
        target = OmegaConf.load(path).get("_target_")
        if isinstance(target, str) and (target not in found or path.stem.replace("_", "") in target.lower()):
            found[target] = path.stem
    return found


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


def importable_class(group: str, target: Any) -> type:
    """The class a run's own config names (which may be any), or a ConfigError naming the key."""
    try:
        return get_class(target)
    except Exception as error:  # noqa: BLE001 - a missing module or attribute, or not a class
        reason = first_line(error.__cause__ or error)
        raise ConfigError(f"{group}._target_={target!r} is not a class that can be imported ({reason})") from None


def build_trusted(config: dict[str, Any], group: str, **kwargs: Any) -> Any:
    """Call the class `config["_target_"]` names (one conf/<group>/ builds) with the rest of `config` and `kwargs`
    as keyword arguments. Nested values are passed as they are, never instantiated."""
    options = dict(config)
    return trusted_class(group, options.pop("_target_", None))(**options, **kwargs)
