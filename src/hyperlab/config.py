"""The config's checks: the keys, types and ranges of a composed config, before anything is built.

The groups that build a class (data, model, optimizer, scheduler) take their options from that class's own
constructor and `check_options` (see hyperlab.options): the YAML option in `conf/<group>/` holds the values and a
comment on each key, and nothing here repeats them. hyperlab's own groups (the root keys, task, trainer, finetune,
monitor, predict) have their schemas here: Hydra checks their keys and types as it composes, `validate` their
ranges. Every refusal names the key and what is allowed.
"""

import copy
import difflib
import inspect
import os
import re
import typing
from dataclasses import dataclass, field, fields, make_dataclass
from typing import Any, Optional

import lightning as L
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException, MissingConfigException
from lightning.fabric.connector import _PRECISION_INPUT
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hyperlab.classes import CONF_DIR, importable_class, trusted_class
from hyperlab.errors import ConfigError, first_line
from hyperlab.options import RangeCheck, check_options, table_reading_checks
from hyperlab.run_folder import RESOLVERS
from hyperlab.tasks import TASKS, metric_mode
from hyperlab.tasks.base import NETWORK_FILLED
from hyperlab.tasks.optimizers import (
    OPTIMIZER_FILLED,
    SCHEDULER_FILLED,
    check_optimizer_options,
    check_scheduler_options,
)
from hyperlab.tasks.precision import offered_precisions
from hyperlab.tasks.regression import LOSSES

MAX_SEED = 2**32 - 1  # what numpy and Lightning's seed_everything accept
# every precision Lightning's Trainer accepts ("64" and 64 alike: the schema's type makes text of a number)
PRECISIONS = list(
    dict.fromkeys(str(value) for kind in typing.get_args(_PRECISION_INPUT) for value in typing.get_args(kind))
)


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
    return f"{key} is not a key of the config: {hint}(a new key takes a +: +{key}=...)"


class _OutOfRange(ValueError):
    def __init__(self, key: str, value: Any, allowed: str) -> None:
        super().__init__(key)
        self.key, self.value, self.allowed = key, value, allowed


@dataclass
class Schema:
    """Base of the schemas: `check_ranges` tests the values with `check`, which names the key it refuses."""

    def check_ranges(self) -> None:
        pass

    def check(self, key: str, ok: bool, allowed: str) -> None:
        if not ok:
            raise _OutOfRange(key, getattr(self, key), allowed)


# ----------------------------------------------------------------------------------------------- task
@dataclass
class TaskSchema(Schema):
    kind: str = MISSING
    loss: str = MISSING

    def check_ranges(self) -> None:
        kinds = ["auto", *TASKS]
        self.check("kind", self.kind in kinds, f"one of {kinds}")
        self.check("loss", self.loss in LOSSES, f"one of {list(LOSSES)}")


# ----------------------------------------------------------------------------------------------- trainer
# Every argument of Lightning's Trainer, with Lightning's own default, read from its signature: `trainer.<arg>=...`
# needs no `+`, and conf/trainer/*.yaml sets only what hyperlab changes. `logger` and `callbacks` are groups.
TRAINER_ARGUMENTS = {
    name: parameter.default
    for name, parameter in inspect.signature(L.Trainer.__init__).parameters.items()
    if name not in ("self", "logger", "callbacks")
}
TrainerArguments = make_dataclass(
    "TrainerArguments",
    [("_target_", str, field(default=MISSING))]
    + [(name, Any, field(default=d)) for name, d in TRAINER_ARGUMENTS.items()],
    bases=(Schema,),
)


@dataclass
class TrainerSchema(TrainerArguments):
    def check_ranges(self) -> None:
        accelerators = ["auto", "cpu", "gpu", "cuda", "mps"]
        self.check("accelerator", self.accelerator in accelerators, f"one of {accelerators}")
        self.check("precision", str(self.precision) in PRECISIONS, f"one of {PRECISIONS}")
        offered, where = offered_precisions(str(self.accelerator), PRECISIONS)  # (before any model is built)
        self.check("precision", str(self.precision) in offered, f"one of {offered} {where}")
        self.check("max_epochs", is_int(self.max_epochs) and self.max_epochs >= 1, "an integer >= 1")
        sanity = self.num_sanity_val_steps
        self.check("num_sanity_val_steps", is_int(sanity) and sanity >= -1, "an integer >= 0, or -1 (all)")
        every = self.check_val_every_n_epoch
        self.check("check_val_every_n_epoch", is_int(every) and every >= 1, "an integer >= 1")


def is_int(value: Any) -> bool:
    return type(value) is int


def check_trainer_overrides(arguments: list[str]) -> None:
    """Refuse a command-line override of a Trainer argument that does not exist, naming the nearest one (Hydra's
    own message for it names no alternative)."""
    for argument in arguments:
        key = argument.split("=", 1)[0].lstrip("+~")
        if "=" not in argument or not key.startswith("trainer.") or key.count(".") != 1:
            continue
        name = key.removeprefix("trainer.")
        if name in ("logger", "callbacks"):
            raise ConfigError(f"{key} is set by the config group {name} ({name}=<option>), not as a Trainer key")
        if name not in TRAINER_ARGUMENTS and name != "_target_":
            near = difflib.get_close_matches(name, TRAINER_ARGUMENTS, n=1)
            hint = f"did you mean trainer.{near[0]}? " if near else ""
            raise ConfigError(f"{key} is not an argument of Lightning's Trainer: {hint}(see lightning.pytorch.Trainer)")


# ----------------------------------------------------------------------------------------------- finetune
@dataclass
class NoFinetuneSchema(Schema):
    pass


@dataclass
class FinetuneSchema(Schema):
    freeze: list[str] = MISSING
    unfreeze_after: Optional[int] = MISSING  # noqa: UP045 (OmegaConf reads typing.Optional)
    lr_factor: float = MISSING
    head: str = MISSING

    def check_ranges(self) -> None:
        self.check("unfreeze_after", self.unfreeze_after is None or self.unfreeze_after >= 1, "an epoch >= 1, or null")
        self.check("lr_factor", self.lr_factor > 0, "a number > 0")
        self.check("head", self.head in ("auto", "new", "keep"), "one of ['auto', 'new', 'keep']")


# ----------------------------------------------------------------------------------------------- root
@dataclass
class MonitorSchema(Schema):
    metric: str = MISSING
    mode: str = MISSING

    def check_ranges(self) -> None:
        allowed = "'auto' (the metric's usual), 'min' (losses, errors) or 'max' (accuracy, r2)"
        self.check("mode", self.mode in ("auto", "min", "max"), allowed)


@dataclass
class TrainSchema:
    """Top level of `train.yaml`; each group is checked by its own schema."""

    data: Any = MISSING
    model: Any = MISSING
    task: Any = MISSING
    optimizer: Any = MISSING
    scheduler: Any = MISSING
    trainer: Any = MISSING
    callbacks: Any = MISSING
    logger: Any = MISSING
    paths: Any = MISSING
    finetune: Any = MISSING
    name: str = MISSING
    seed: int = MISSING
    threads: Optional[int] = MISSING  # noqa: UP045 (OmegaConf reads typing.Optional, not `int | None`)
    resume: bool = MISSING
    ckpt_path: Optional[str] = MISSING  # noqa: UP045 (OmegaConf reads typing.Optional)
    monitor: MonitorSchema = field(default_factory=MonitorSchema)


@dataclass
class PredictSchema(Schema):
    """`predict.yaml`, the config of hyperlab-predict."""

    ckpt_path: str = MISSING
    images: Optional[str] = MISSING  # noqa: UP045
    table: Optional[str] = MISSING  # noqa: UP045
    top_k: int = MISSING
    invert: Optional[bool] = MISSING  # noqa: UP045 (OmegaConf reads typing.Optional, not `bool | None`)
    box_fraction: float = MISSING
    sep: Optional[str] = MISSING  # noqa: UP045
    file_encoding: str = MISSING
    na_values: list[str] = MISSING
    decimal: str = MISSING

    def check_ranges(self) -> None:
        self.check("top_k", self.top_k >= 1, "an integer >= 1")
        self.check("box_fraction", 0 < self.box_fraction <= 1, "a share of the frame in (0, 1]")
        for key, ok, allowed in table_reading_checks(self.sep, self.file_encoding, self.decimal):
            self.check(key, ok, allowed)


@dataclass
class SweepTableSchema:
    """`sweep_table.yaml`, the config of hyperlab-sweep-table."""

    folder: str = MISSING
    metric: str = MISSING
    sort: Optional[str] = MISSING  # noqa: UP045 (OmegaConf reads typing.Optional)
    pivot: Optional[list[str]] = MISSING  # noqa: UP045
    panels: Optional[str] = MISSING  # noqa: UP045


SCHEMAS: dict[str, dict[str, type]] = {
    "task": {"default": TaskSchema},
    "trainer": {"default": TrainerSchema},
    "finetune": {"none": NoFinetuneSchema, "default": FinetuneSchema},
}
# The groups whose option builds a class: its options are that class's constructor arguments (see hyperlab.options),
# but those the code fills in, and the ranges of a library's class are checked by a function beside its builder.
BUILT_GROUPS: dict[str, tuple[tuple[str, ...], RangeCheck | None]] = {
    "data": ((), None),
    "model": (NETWORK_FILLED, None),
    "optimizer": (OPTIMIZER_FILLED, check_optimizer_options),
    "scheduler": (SCHEDULER_FILLED, check_scheduler_options),
}
CHECKED_GROUPS = (*BUILT_GROUPS, *SCHEMAS, "monitor")


def register_schemas() -> None:
    """Put every schema in Hydra's ConfigStore as `schema/<group>/<name>` (and the root as `train_schema`)."""
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainSchema)
    store.store(name="predict_schema", node=PredictSchema)
    store.store(name="sweep_table_schema", node=SweepTableSchema)
    for group, schemas in SCHEMAS.items():
        for name, schema in schemas.items():
            store.store(group=f"schema/{group}", name=name, node=schema)


def validate(cfg: DictConfig) -> None:
    """Refuse a composed config whose values are out of range or don't fit together, naming the key."""
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
            values = OmegaConf.to_container(cfg[group], resolve=True)
            if values:  # (scheduler=none builds nothing)
                check_values(group, values, from_file=False)
            continue
        try:
            OmegaConf.to_object(cfg[group]).check_ranges()
        except _OutOfRange as error:
            raise ConfigError(f"{group}.{error.key}={error.value!r} is not allowed: expected {error.allowed}") from None
    if cfg.finetune and cfg.ckpt_path is None:
        raise ConfigError("fine-tuning starts from a checkpoint: give ckpt_path=<the pretrained checkpoint>")
    if not 0 <= cfg.seed <= MAX_SEED:
        raise ConfigError(f"seed={cfg.seed} is not allowed: expected an integer from 0 to {MAX_SEED}")
    cores = os.cpu_count() or 1
    if cfg.threads is not None and not 1 <= cfg.threads <= cores:
        raise ConfigError(
            f"threads={cfg.threads} is not allowed: expected an integer from 1 to {cores} (the cores of this machine), "
            "or null (torch's default)"
        )
    kinds = list(TASKS) if cfg.task.kind == "auto" else [cfg.task.kind]
    allowed = ["auto", *dict.fromkeys(f"val/{name}" for kind in kinds for name in TASKS[kind].metric_modes)]
    if cfg.monitor.metric not in allowed:
        raise ConfigError(
            f"monitor.metric={cfg.monitor.metric!r} is not a metric this task logs: expected one of {allowed}"
        )


def check_values(group: str, values: dict[str, Any], from_file: bool = True) -> None:
    """Check the values of a group that builds a class: the class must take them. Read from a file, the class must
    be one an option of conf/<group>/ builds (as must a task's network, optimizer and scheduler, which checkpoints
    rebuild); the run's own datamodule may be any class its config names. Raises ConfigError naming the key."""
    filled, ranges = BUILT_GROUPS[group]
    target = values.get("_target_")
    cls = trusted_class(group, target) if from_file or group != "data" else importable_class(group, target)
    check_options(cls, values, group, filled, ranges)


def optuna_direction(metric: str, mode: str) -> str:
    """Optuna's `direction` from monitor.metric and monitor.mode (conf/hparams_search/optuna.yaml)."""
    direction = mode if mode != "auto" else metric_mode(metric)
    if direction is None:
        raise ConfigError(f"monitor.metric={metric!r}: a search needs to know the metric it optimises (e.g. val/loss)")
    return f"{direction}imize"


def with_data(cfg: DictConfig, data_kind: str) -> DictConfig:
    """The config as the data settles it, a new one (`cfg` is left as composed): `task.kind=auto` takes the data's
    kind, `monitor.*=auto` that kind's usual metric (val/acc, highest; val/loss, lowest); the callbacks read
    `${monitor.metric}` from it. A task forced to another kind than the data's is refused."""
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
        OmegaConf.to_object(cfg).check_ranges()
    except _OutOfRange as error:
        raise ConfigError(f"{error.key}={error.value!r} is not allowed: expected {error.allowed}") from None


def register_resolvers() -> None:
    """The resolvers conf/ uses: the run folder's name (conf/hydra/default.yaml) and Optuna's direction."""
    for name, function in {**RESOLVERS, "hyperlab_optuna_direction": optuna_direction}.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)


register_schemas()
register_resolvers()
