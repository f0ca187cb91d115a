"""The config's checks: the keys, types and ranges of a composed config, before anything is built.

The groups that build a class (data, model, optimizer, scheduler) take their options from that class's own
constructor and `check_options` (see hyperlab.options): the YAML option in `conf/<group>/` holds the values and a
comment on each key, and nothing here repeats them. hyperlab's own groups (the root keys, task, trainer, finetune,
monitor, predict) have their schemas here: Hydra checks their keys and types as it composes, `validate` their
ranges. Every refusal names the key and what is allowed.

`validate` checks in two steps. `check_declared` reads only what hyperlab declares (the schemas here, the options of
its networks and datamodules) and imports no torch nor Lightning: the commands run it on the command line's config
before anything heavy is imported, so that a wrong key, value or option is refused in a moment (hyperlab.cli;
docs/benchmarks.md). `check_with_libraries` then checks what torch's and Lightning's classes, the tasks and this
machine say: an optimizer's or scheduler's options, a class of one's own, the task's kind and loss, the metric to
monitor, the precision; this module imports them there.
"""

import ast
import copy
import difflib
import functools
import importlib.util
import inspect
import os
import re
import typing
from dataclasses import dataclass, field, fields, make_dataclass
from pathlib import Path
from typing import Any, Optional

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException, MissingConfigException
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, OmegaConfBaseException

from hyperlab.classes import CONF_DIR, importable_class, trusted_class, trusted_target
from hyperlab.errors import ConfigError, DataError, first_line
from hyperlab.networks.options import (
    NetworkRefused,
    Options,
    blamed_key,
    check_network,
    count_text,
    size_text,
    starts_pretrained,
)
from hyperlab.options import OutOfRange, RangeCheck, check_options, declared_options, table_reading_checks
from hyperlab.replicates import check_replicates
from hyperlab.run_folder import RESOLVERS

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


@dataclass
class Schema:
    """Base of the schemas: `check_ranges` tests a composed group's values, each resolved as it is read (what no
    check reads, e.g. trainer.default_root_dir, the run folder Hydra makes, is not), refusing one with `require`."""

    @staticmethod
    def check_ranges(values: DictConfig) -> None:
        pass


def require(values: DictConfig, key: str, ok: bool, allowed: str) -> None:
    """Refuse the value of `key` in `values` (a group's), saying what is `allowed`, unless `ok`."""
    if not ok:
        raise OutOfRange(key, values[key], allowed)


# ----------------------------------------------------------------------------------------------- task
@dataclass
class TaskSchema(Schema):
    """(Its values are the tasks': `check_task`.)"""

    kind: str = MISSING
    loss: str = MISSING


# ----------------------------------------------------------------------------------------------- trainer
def trainer_arguments() -> dict[str, Any]:
    """Every argument of Lightning's Trainer with Lightning's own default, read from the source of its `__init__`:
    the config is composed before Lightning (and torch) is imported; tests/test_fast_refusal.py checks that this is
    what the signature says. Read from the signature itself where the source cannot be read so (a default that is
    not a literal)."""
    spec = importlib.util.find_spec("lightning")  # (finds the package without importing it)
    try:
        package = Path(spec.submodule_search_locations[0])  # type: ignore[union-attr]
        tree = ast.parse((package / "pytorch" / "trainer" / "trainer.py").read_text(encoding="utf-8"))
        trainer = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Trainer")
        init = next(node for node in trainer.body if isinstance(node, ast.FunctionDef) and node.name == "__init__")
        given = init.args
        positional = [*given.posonlyargs, *given.args]
        defaults = [*[None] * (len(positional) - len(given.defaults)), *given.defaults]
        pairs = [*zip(positional, defaults, strict=True), *zip(given.kwonlyargs, given.kw_defaults, strict=True)]
        found = {arg.arg: inspect.Parameter.empty if d is None else ast.literal_eval(d) for arg, d in pairs}
    except (AttributeError, TypeError, OSError, SyntaxError, StopIteration, ValueError):
        import lightning as L

        found = {name: p.default for name, p in inspect.signature(L.Trainer.__init__).parameters.items()}
    return {name: default for name, default in found.items() if name not in ("self", "logger", "callbacks")}


# Every argument of Lightning's Trainer, with Lightning's own default: `trainer.<arg>=...` needs no `+`, and
# conf/trainer/*.yaml sets only what hyperlab changes. `logger` and `callbacks` are groups.
TRAINER_ARGUMENTS = trainer_arguments()
TrainerArguments = make_dataclass(
    "TrainerArguments",
    [("_target_", str, field(default=MISSING))]
    + [(name, Any, field(default=d)) for name, d in TRAINER_ARGUMENTS.items()],
    bases=(Schema,),
)


# the Trainer's switches, true or false (their Lightning default: None means "Lightning decides"; a text such as
# `yes` would reach torch as it is). fast_dev_run takes a number too; deterministic takes "warn".
TRAINER_FLAGS = {name: TRAINER_ARGUMENTS[name] for name in (
    "detect_anomaly", "inference_mode", "use_distributed_sampler", "barebones", "sync_batchnorm",
    "enable_autolog_hparams", "enable_checkpointing", "enable_progress_bar", "enable_model_summary", "benchmark",
) if name in TRAINER_ARGUMENTS}  # fmt: skip


@dataclass
class TrainerSchema(TrainerArguments):
    """(The precision: Lightning's and this machine's, `check_precision`.)"""

    @staticmethod
    def check_ranges(trainer: DictConfig) -> None:
        accelerators = ["auto", "cpu", "gpu", "cuda", "mps"]
        require(trainer, "accelerator", trainer.accelerator in accelerators, f"one of {accelerators}")
        require(trainer, "max_epochs", is_int(trainer.max_epochs) and trainer.max_epochs >= 1, "an integer >= 1")
        sanity = trainer.num_sanity_val_steps
        require(trainer, "num_sanity_val_steps", is_int(sanity) and sanity >= -1, "an integer >= 0, or -1 (all)")
        every = trainer.check_val_every_n_epoch
        require(trainer, "check_val_every_n_epoch", is_int(every) and every >= 1, "an integer >= 1")
        accumulate = trainer.accumulate_grad_batches
        require(trainer, "accumulate_grad_batches", is_int(accumulate) and accumulate >= 1, "an integer >= 1")
        require(trainer, "val_check_interval", is_val_check_interval(trainer.val_check_interval),
                "null (once an epoch), an integer >= 1 (training batches), a share of an epoch in (0, 1], "
                "or a duration ('DD:HH:MM:SS', or a mapping of timedelta's arguments)")  # fmt: skip
        for flag, default in TRAINER_FLAGS.items():
            value = trainer[flag]
            ok = type(value) is bool or value is default is None
            require(trainer, flag, ok, "true or false" + (", or null (Lightning's default)" if default is None else ""))


def is_val_check_interval(value: Any) -> bool:
    """Lightning's `val_check_interval`: what it takes, but 0 (which would validate on no batch, dividing by zero)."""
    if value is None or isinstance(value, (str, DictConfig)):  # (a duration: Lightning reads it)
        return True
    if is_int(value):
        return value >= 1
    return type(value) is float and 0 < value <= 1


@functools.cache
def lightning_precisions() -> list[str]:
    """Every precision Lightning's Trainer accepts ("64" and 64 alike: the schema's type makes text of a number)."""
    from lightning.fabric.connector import _PRECISION_INPUT

    kinds = typing.get_args(_PRECISION_INPUT)
    return list(dict.fromkeys(str(value) for kind in kinds for value in typing.get_args(kind)))


def check_precision(trainer: DictConfig) -> None:
    """trainer.precision: one Lightning takes, and the accelerator the run gets can run (before any model is built)."""
    from hyperlab.tasks.precision import offered_precisions

    known = lightning_precisions()
    require(trainer, "precision", str(trainer.precision) in known, f"one of {known}")
    offered, where = offered_precisions(str(trainer.accelerator), known)
    require(trainer, "precision", str(trainer.precision) in offered, f"one of {offered} {where}")


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

    @staticmethod
    def check_ranges(finetune: DictConfig) -> None:
        after = finetune.unfreeze_after
        require(finetune, "unfreeze_after", after is None or after >= 1, "an epoch >= 1, or null")
        require(finetune, "lr_factor", finetune.lr_factor > 0, "a number > 0")
        require(finetune, "head", finetune.head in ("auto", "new", "keep"), "one of ['auto', 'new', 'keep']")


# ----------------------------------------------------------------------------------------------- tune
@dataclass
class NoTuneSchema(Schema):
    pass


LR_FIND_MODES = ("exponential", "linear")  # how Lightning's finder grows the learning rate
LR_FIND_SKIPPED = 11  # the points hyperlab.tuning's suggestion leaves out (the first 10 and the last): it needs 2 more


@dataclass
class LrFindSchema(Schema):
    """tune=lr_find: the arguments of Lightning's `Tuner.lr_find` (conf/tune/lr_find.yaml; hyperlab.tuning)."""

    min_lr: float = MISSING
    max_lr: float = MISSING
    num_training: int = MISSING
    mode: str = MISSING
    early_stop_threshold: Optional[float] = MISSING  # noqa: UP045 (OmegaConf reads typing.Optional)

    @staticmethod
    def check_ranges(tune: DictConfig) -> None:
        require(tune, "min_lr", tune.min_lr > 0, "a learning rate > 0")
        require(tune, "max_lr", tune.max_lr > tune.min_lr, f"a learning rate > tune.min_lr ({tune.min_lr})")
        fewest = LR_FIND_SKIPPED + 2
        require(tune, "num_training", tune.num_training >= fewest, f"an integer >= {fewest} (the steps it tries)")
        require(tune, "mode", tune.mode in LR_FIND_MODES, f"one of {list(LR_FIND_MODES)}")
        threshold = tune.early_stop_threshold
        require(tune, "early_stop_threshold", threshold is None or threshold > 1, "a number > 1, or null (never)")


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


# ----------------------------------------------------------------------------------------------- root
@dataclass
class MonitorSchema(Schema):
    metric: str = MISSING
    mode: str = MISSING

    @staticmethod
    def check_ranges(monitor: DictConfig) -> None:
        allowed = "'auto' (the metric's usual), 'min' (losses, errors) or 'max' (accuracy, r2)"
        require(monitor, "mode", monitor.mode in ("auto", "min", "max"), allowed)


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
    tune: Any = MISSING
    name: str = MISSING
    seed: int = MISSING
    repeats: int = MISSING
    repeat: int = MISSING
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
    box_fraction: Optional[float] = MISSING  # noqa: UP045 (None: the checkpoint's own framing)
    sep: Optional[str] = MISSING  # noqa: UP045
    file_encoding: str = MISSING
    na_values: list[str] = MISSING
    decimal: str = MISSING

    @staticmethod
    def check_ranges(predict: DictConfig) -> None:
        require(predict, "top_k", predict.top_k >= 1, "an integer >= 1")
        box_ok = predict.box_fraction is None or 0 < predict.box_fraction <= 1
        require(predict, "box_fraction", box_ok, "a share of the frame in (0, 1], or null")
        for key, ok, allowed in table_reading_checks(predict.sep, predict.file_encoding, predict.decimal):
            require(predict, key, ok, allowed)


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
    "tune": {"none": NoTuneSchema, "lr_find": LrFindSchema},
}
# The groups whose option builds a class: its options are that class's constructor arguments (see hyperlab.options)
BUILT_GROUPS = ("data", "model", "optimizer", "scheduler")
CHECKED_GROUPS = (*BUILT_GROUPS, *SCHEMAS, "monitor")


def built_group(group: str) -> tuple[tuple[str, ...], RangeCheck | None]:
    """A built group's options that the code fills in, and the function that checks the ranges of a library's
    class (beside the code that builds it), if the group takes one."""
    from hyperlab.tasks.base import NETWORK_FILLED
    from hyperlab.tasks.optimizers import (
        OPTIMIZER_FILLED,
        SCHEDULER_FILLED,
        check_optimizer_options,
        check_scheduler_options,
    )

    return {
        "data": ((), None),
        "model": (NETWORK_FILLED, None),
        "optimizer": (OPTIMIZER_FILLED, check_optimizer_options),
        "scheduler": (SCHEDULER_FILLED, check_scheduler_options),
    }[group]


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


def check_with_libraries(cfg: DictConfig) -> None:
    """What torch's and Lightning's classes, the tasks and this machine say of a config `check_declared` passed:
    the options of the classes hyperlab does not declare (torch's optimizers and schedulers, one's own datamodule),
    the task's kind and loss, the metric to monitor, the precision."""
    in_range("task", cfg.task, check_task)
    in_range("trainer", cfg.trainer, check_precision)
    for group in BUILT_GROUPS:
        values = OmegaConf.to_container(cfg[group], resolve=True)
        if values and declared_options(values.get("_target_")) is None:  # (scheduler=none builds nothing)
            check_values(group, values, from_file=False)
    check_monitored(cfg.task.kind, cfg.monitor.metric)


def in_range(group: str, values: DictConfig, check: Any) -> None:
    """`check(values)`, a group's values checked with `require`; what it refuses, as one line naming the key."""
    try:
        check(values)
    except OutOfRange as error:
        raise ConfigError(f"{group}.{error.key}={error.value!r} is not allowed: expected {error.allowed}") from None


def check_task(task: DictConfig) -> None:
    """task.kind and task.loss: a task's kind (or auto) and a regression's loss."""
    from hyperlab.tasks import TASKS
    from hyperlab.tasks.regression import LOSSES

    kinds = ["auto", *TASKS]
    require(task, "kind", task.kind in kinds, f"one of {kinds}")
    require(task, "loss", task.loss in LOSSES, f"one of {list(LOSSES)}")


def check_monitored(kind: str, metric: str) -> None:
    """monitor.metric: one a task of `kind` logs (any task's for auto), or auto."""
    from hyperlab.tasks import TASKS

    kinds = list(TASKS) if kind == "auto" else [kind]
    allowed = ["auto", *dict.fromkeys(f"val/{name}" for kind in kinds for name in TASKS[kind].metric_modes)]
    if metric not in allowed:
        raise ConfigError(f"monitor.metric={metric!r} is not a metric this task logs: expected one of {allowed}")


def declared_values(group: str, values: dict[str, Any]) -> None:
    """Check the values of a built group whose class is one of hyperlab's networks or datamodules by the options
    it declares, without importing it (a network must be one an option of conf/model/ builds); another class's
    values are left to `check_values`, once it is imported (`check_with_libraries`)."""
    target = values.get("_target_") if values else None
    declared = declared_options(target)
    if declared is None:
        return
    if group != "data":
        trusted_target(group, target)
    check_options(declared, values, group, name=target.rpartition(".")[2])


def check_network_on_any_data(model: dict[str, Any], data: DictConfig) -> None:
    """Refuse a network too large for this machine whatever the data (`networks.options.check_network` on the
    smallest inputs it could take, one output, in the data's batches): before torch is imported, and before the data
    is read (each network's constructor checks it again on the data's own inputs)."""
    declared = declared_options(model.get("_target_"))
    if declared is None:
        return
    batch_size = data.get("batch_size")
    batch_size = batch_size if is_int(batch_size) and batch_size >= 1 else 1  # (one's own datamodule: any)
    check_network(declared, model, None, 1, batch_size, "model")


def check_stored_network(network: dict[str, Any], input_shape: list[int], source: str | Path) -> None:
    """A checkpoint's network on the inputs it stores, checked as the command line's is (`check_network_on_any_data`)
    before it is built; and its weights, in the file, must be there: a network whose parameters take more bytes than
    the whole file (2 each at least: float16) is refused, whatever this machine's memory. Raises DataError naming the
    file and the key (`network.<key>`)."""
    declared = declared_options(network.get("_target_"))
    if declared is None:
        return
    options = {key: value for key, value in network.items() if key != "input_shape"}
    file_bytes = Path(source).stat().st_size if Path(source).is_file() else None
    try:
        check_network(declared, options, input_shape, 1, 1, "network")
        if file_bytes is not None:
            check_weights_stored(declared, options, input_shape, file_bytes)
    except NetworkRefused as error:
        raise DataError(f"{source} is refused: {error}") from None


FEWEST_WEIGHT_BYTES = 2  # a checkpoint's weights take 2 bytes each at least (float16, bfloat16)


def check_weights_stored(declared: Any, options: dict[str, Any], input_shape: list[int], file_bytes: int) -> None:
    """Refuse a stored network whose weights could not be in a file of `file_bytes` bytes (NetworkRefused)."""
    values = Options(options)
    parameters = declared.footprint(values, input_shape, 1).parameters
    if parameters * FEWEST_WEIGHT_BYTES <= file_bytes:
        return
    key = blamed_key(declared, values, input_shape, 1, lambda f: f.parameters * FEWEST_WEIGHT_BYTES <= file_bytes)
    subject = f"network.{key}={values[key]!r}" if key else f"network on inputs of shape {input_shape}"
    raise NetworkRefused(f"{subject} is not allowed: its {count_text(parameters)} parameters would not fit in the "
                         f"file's {size_text(file_bytes)} (it holds the weights)")  # fmt: skip


def check_values(group: str, values: dict[str, Any], from_file: bool = True) -> None:
    """Check the values of a group that builds a class: the class must take them. Read from a file, the class must
    be one an option of conf/<group>/ builds (as must a task's network, optimizer and scheduler, which checkpoints
    rebuild); the run's own datamodule may be any class its config names. Raises ConfigError naming the key."""
    filled, ranges = built_group(group)
    target = values.get("_target_")
    cls = trusted_class(group, target) if from_file or group != "data" else importable_class(group, target)
    check_options(cls, values, group, filled, ranges, name=target.rpartition(".")[2])


def optuna_direction(metric: str, mode: str) -> str:
    """Optuna's `direction` from monitor.metric and monitor.mode (conf/hparams_search/optuna.yaml)."""
    from hyperlab.tasks import metric_mode

    direction = mode if mode != "auto" else metric_mode(metric)
    if direction is None:
        raise ConfigError(f"monitor.metric={metric!r}: a search needs to know the metric it optimises (e.g. val/loss)")
    return f"{direction}imize"


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


def register_resolvers() -> None:
    """The resolvers conf/ uses: the run folder's name (conf/hydra/default.yaml) and Optuna's direction."""
    for name, function in {**RESOLVERS, "hyperlab_optuna_direction": optuna_direction}.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)


register_schemas()
register_resolvers()
