"""A config composed as the command line does, and checked before anything is built: its keys, types and ranges.

The groups that build a class (data, model, optimizer, scheduler) take their options from that class's own
constructor and `check_options` (see hyperlab.options): the YAML option in `conf/<group>/` holds the values and a
comment on each key, and nothing here repeats them. hyperlab's own groups (the root keys, task, trainer, finetune,
tune, monitor, predict) have their schemas in hyperlab.schemas: Hydra checks their keys and types as it composes
(`compose_config`, which names the nearest key to one that does not exist), `validate` their ranges. Every refusal
names the key and what is allowed.

`validate` checks in two steps. `check_declared` reads only what hyperlab declares (the schemas, the options of its
networks and datamodules, hyperlab.network_checks) and imports no torch nor Lightning: the commands run it on the
command line's config before anything heavy is imported, so that a wrong key, value or option is refused in a moment
(hyperlab.cli; docs/benchmarks.md). `check_with_libraries` (hyperlab.library_checks) then checks what torch's and
Lightning's classes, the tasks and this machine say.
"""

import copy
import difflib
import importlib.util
import os
import re
from dataclasses import fields
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, OmegaConfBaseException

from hyperlab.classes import CONF_DIR, trusted_target
from hyperlab.errors import ConfigError, first_line
from hyperlab.library_checks import check_with_libraries
from hyperlab.network_checks import check_network_on_any_data
from hyperlab.networks.options import starts_pretrained
from hyperlab.options import OutOfRange, check_options, declared_options
from hyperlab.replicates import check_replicates
from hyperlab.schemas import BUILT_GROUPS, CHECKED_GROUPS, PredictSchema, TrainSchema, in_range

MAX_SEED = 2**32 - 1  # what numpy and Lightning's seed_everything accept


def compose_config(config_name: str, overrides: list[str], with_hydra: bool = False) -> DictConfig:
    """Compose `conf/<config_name>.yaml` with `overrides`, as the command line does (outside a Hydra app; `with_hydra`:
    its `hydra` node too, e.g. the run folder it would make); what Hydra refuses is a ConfigError of one line that
    names the key or option."""
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(config_name, overrides=overrides, return_hydra_config=with_hydra)
    except MissingConfigException as error:  # an option that does not exist: name the ones that do
        group = re.search(r"Available options in '([\w/]+)'", str(error))
        choice = next((o for o in overrides if group and o.split("=", 1)[0].lstrip("+~") == group[1]), None)
        available = re.findall(r"^\t(\S+)$", str(error), flags=re.MULTILINE)
        if choice and available:
            raise ConfigError(f"{choice} is not an option of {group[1]}: expected one of {available}") from None
        raise ConfigError(first_line(error)) from None
    except (HydraException, OmegaConfBaseException) as error:
        key = re.match(r"Could not override '([\w.]+)'", str(error))
        if key is not None:
            raise ConfigError(unknown_key(config_name, overrides, key[1])) from None
        cause = error.__cause__ if isinstance(error.__cause__, OmegaConfBaseException) else error
        where = getattr(cause, "full_key", None)
        raise ConfigError(f"{where}: {first_line(cause)}" if where else first_line(error)) from None


def unknown_key(config_name: str, overrides: list[str], key: str) -> str:
    """Hydra's refusal of `key=...` (no such key), with the nearest key there is."""
    parent, _, name = key.rpartition(".")
    rest = [o for o in overrides if o.split("=", 1)[0] != key]
    try:
        node = compose_config(config_name, rest)
        keys = list(OmegaConf.select(node, parent) or {}) if parent else list(node)
    except ConfigError:
        keys = []
    near = [f"{parent + '.' if parent else ''}{match}" for match in difflib.get_close_matches(name, keys, n=1)]
    if not parent and not near and keys:  # a group's key typed without its group (`lr=0.01`: optimizer.lr)
        near = [f"{group}.{name}" for group in keys if isinstance(node[group], DictConfig) and name in node[group]]
    hint = f"did you mean {near[0]}? " if near else ""
    others = options_with_key(parent, name) if parent and not near else []
    if others:  # (`data.folds` with data=blobs, `model.kernel_size` with the MLP: an option of other choices)
        return f"{key} is not a key of the config: it is an option of {parent}={', '.join(others)} only"
    return f"{key} is not a key of the config: {hint}(a new key takes a +: +{key}=...)"


def options_with_key(group: str, name: str) -> list[str]:
    """The options of the config group `group` (conf/<group>/) whose file sets `name` at its top level."""
    folder = CONF_DIR / group
    if not folder.is_dir() or "/" in group or "." in group:
        return []
    return sorted(
        path.stem for path in folder.glob("*.yaml") if re.search(rf"(?m)^{re.escape(name)}:", path.read_text())
    )


def validate(cfg: DictConfig) -> None:
    """Refuse a composed config whose values are out of range or don't fit together, naming the key."""
    check_declared(cfg)
    check_with_libraries(cfg)


def check_declared(cfg: DictConfig) -> None:
    """What hyperlab declares says of a composed config, checked without importing torch or Lightning: its keys,
    the values its schemas check, the options of its own networks and datamodules (`declared_values`)."""
    known = [f.name for f in fields(TrainSchema)]
    unknown = [key for key in cfg if key not in known and key != "hydra"]
    if unknown:
        raise ConfigError(f"{unknown[0]} is not a key of the config (added with +?): expected one of {known}")
    for group in CHECKED_GROUPS:
        missing = [key for key in cfg[group] if OmegaConf.is_missing(cfg[group], key)]
        if missing:
            key = f"{group}.{missing[0]}"
            raise ConfigError(f"{key} is required: give it on the command line ({key}=...)")
        if group in BUILT_GROUPS:
            try:
                values = OmegaConf.to_container(cfg[group], resolve=True)
            except InterpolationResolutionError:  # (one that reads what Hydra sets as it runs, e.g. the run folder)
                continue  # (checked again in the run itself, where Hydra has set it: `validate`)
            declared_values(group, values)
            if group == "model":
                check_network_on_any_data(values, cfg.data)
            continue
        in_range(group, cfg[group], OmegaConf.get_type(cfg[group]).check_ranges)  # (its schema's)
    if cfg.finetune and cfg.ckpt_path is None and not starts_pretrained(cfg.model):  # (torchvision's own weights)
        raise ConfigError("fine-tuning starts from a checkpoint: give ckpt_path=<the pretrained checkpoint>")
    check_tuning(cfg)
    check_loggers(cfg.logger)
    if not 0 <= cfg.seed <= MAX_SEED:
        raise ConfigError(f"seed={cfg.seed} is not allowed: expected an integer from 0 to {MAX_SEED}")
    check_replicates(cfg.repeats, cfg.repeat)
    cores = os.cpu_count() or 1
    if cfg.threads is not None and not 1 <= cfg.threads <= cores:
        raise ConfigError(
            f"threads={cfg.threads} is not allowed: expected an integer from 1 to {cores} (the cores of this machine), "
            "or null (torch's default)"
        )


def declared_values(group: str, values: dict[str, Any]) -> None:
    """Check the values of a built group whose class is one of hyperlab's networks or datamodules by the options
    it declares, without importing it (a network must be one an option of conf/model/ builds); another class's
    values are left to hyperlab.library_checks, once it is imported (`check_with_libraries`)."""
    target = values.get("_target_") if values else None
    declared = declared_options(target)
    if declared is None:
        return
    if group != "data":
        trusted_target(group, target)
    check_options(declared, values, group, name=target.rpartition(".")[2])


def check_tuning(cfg: DictConfig) -> None:
    """tune=lr_find finds the learning rate one new run starts with: not a sweep's (`repeats`, `data.folds`; -m is
    refused by the command line, hyperlab.cli), not a resumed run's, not with fast_dev_run (which Lightning's finder
    skips)."""
    if not cfg.tune:
        return
    if cfg.repeats != 1 or (cfg.data.get("folds") or 1) != 1:
        key = "repeats" if cfg.repeats != 1 else "data.folds"
        raise ConfigError(f"tune=lr_find finds one learning rate for one experiment: leave out {key} (a sweep)")
    if cfg.ckpt_path is not None and not cfg.finetune:
        raise ConfigError("tune=lr_find finds the learning rate a new run starts with: leave out ckpt_path (a resume)")
    if cfg.trainer.fast_dev_run:
        raise ConfigError("tune=lr_find: Lightning's finder skips a trainer.fast_dev_run run: leave fast_dev_run out")


# ----------------------------------------------------------------------------------------------- loggers
# loggers of an optional extra, by their class's name: the package each needs (looked for without importing it)
EXTRA_LOGGERS = {"WandbLogger": "wandb"}


def check_loggers(loggers: DictConfig) -> None:
    """A logger whose package is not installed is refused in one line before anything is imported or built."""
    for name, options in loggers.items():
        package = EXTRA_LOGGERS.get(str(options.get("_target_", "")).rpartition(".")[2])
        if package is not None and importlib.util.find_spec(package) is None:
            raise ConfigError(f'logger={name} needs the {package} package: pip install -e ".[{package}]"')


def with_data(cfg: DictConfig, data_kind: str) -> DictConfig:
    """The config as the data settles it, a new one (`cfg` is left as composed): `task.kind=auto` takes the data's
    kind, `monitor.*=auto` that kind's usual metric (val/acc, highest; val/loss, lowest); the callbacks read
    `${monitor.metric}` from it. A task forced to another kind than the data's is refused."""
    from hyperlab.tasks import TASKS, metric_mode

    if cfg.task.kind not in ("auto", data_kind):
        hint = f", or data.task={cfg.task.kind} to read the target as {cfg.task.kind}" if "task" in cfg.data else ""
        raise ConfigError(
            f"task={cfg.task.kind} does not fit this data, which is for {data_kind} (use task=auto{hint})"
        )
    allowed = [f"val/{name}" for name in TASKS[data_kind].metric_modes]
    if cfg.monitor.metric not in ("auto", *allowed):
        raise ConfigError(f"monitor.metric={cfg.monitor.metric!r} is not logged for {data_kind}: one of {allowed}")
    metric = f"val/{TASKS[data_kind].default_monitor}" if cfg.monitor.metric == "auto" else cfg.monitor.metric
    mode = metric_mode(metric) if cfg.monitor.mode == "auto" else cfg.monitor.mode
    settled = copy.deepcopy(cfg)
    settled.task.kind = data_kind
    settled.monitor.metric, settled.monitor.mode = metric, mode
    return settled


def validate_predict(cfg: DictConfig) -> None:
    """Refuse a predict config with a required key left out or a value out of range, naming the key."""
    usage = "hyperlab-predict ckpt_path=<file.ckpt> images=<file or folder>, or table=<file.csv>"
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise ConfigError(f"ckpt_path is required: {usage}")
    if (cfg.images is None) == (cfg.table is None):
        raise ConfigError(f"give one of images=... and table=...: {usage}")
    try:
        PredictSchema.check_ranges(cfg)
    except OutOfRange as error:
        raise ConfigError(f"{error.key}={error.value!r} is not allowed: expected {error.allowed}") from None
