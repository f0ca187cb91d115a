"""hyperlab's own config groups' schemas (the root keys, task, trainer, finetune, tune, monitor, predict,
sweep_table), and the resolvers conf/ uses: both registered with Hydra and OmegaConf as this module is imported.

Hydra checks a group's keys and types by its schema as it composes; `Schema.check_ranges` checks its values
(hyperlab.config runs it, `in_range`: one line naming the key). The groups that build a class (`BUILT_GROUPS`) have no
schema here: their options are that class's constructor arguments (hyperlab.options).
"""

from dataclasses import dataclass, field, make_dataclass
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from hyperlab.errors import ConfigError
from hyperlab.options import OutOfRange, table_reading_checks
from hyperlab.run_folder import RESOLVERS
from hyperlab.trainer_arguments import TRAINER_ARGUMENTS, TRAINER_FLAGS


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


def in_range(group: str, values: DictConfig, check: Any) -> None:
    """`check(values)`, a group's values checked with `require`; what it refuses, as one line naming the key."""
    try:
        check(values)
    except OutOfRange as error:
        raise ConfigError(f"{group}.{error.key}={error.value!r} is not allowed: expected {error.allowed}") from None


def is_int(value: Any) -> bool:
    return type(value) is int


# ----------------------------------------------------------------------------------------------- task
@dataclass
class TaskSchema(Schema):
    """(Its values are the tasks': hyperlab.library_checks.check_task.)"""

    kind: str = MISSING
    loss: str = MISSING


# ----------------------------------------------------------------------------------------------- trainer
TrainerArguments = make_dataclass(
    "TrainerArguments",
    [("_target_", str, field(default=MISSING))]
    + [(name, Any, field(default=d)) for name, d in TRAINER_ARGUMENTS.items()],
    bases=(Schema,),
)


@dataclass
class TrainerSchema(TrainerArguments):
    """(The precision: Lightning's and this machine's, hyperlab.library_checks.check_precision.)"""

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


def register_schemas() -> None:
    """Put every schema in Hydra's ConfigStore as `schema/<group>/<name>` (and the root as `train_schema`)."""
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainSchema)
    store.store(name="predict_schema", node=PredictSchema)
    store.store(name="sweep_table_schema", node=SweepTableSchema)
    for group, schemas in SCHEMAS.items():
        for name, schema in schemas.items():
            store.store(group=f"schema/{group}", name=name, node=schema)


def optuna_direction(metric: str, mode: str) -> str:
    """Optuna's `direction` from monitor.metric and monitor.mode (conf/hparams_search/optuna.yaml)."""
    from hyperlab.tasks import metric_mode

    direction = mode if mode != "auto" else metric_mode(metric)
    if direction is None:
        raise ConfigError(f"monitor.metric={metric!r}: a search needs to know the metric it optimises (e.g. val/loss)")
    return f"{direction}imize"


def register_resolvers() -> None:
    """The resolvers conf/ uses: the run folder's name (conf/hydra/default.yaml) and Optuna's direction."""
    for name, function in {**RESOLVERS, "hyperlab_optuna_direction": optuna_direction}.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)


# At import, on purpose: a sweep's job run by Hydra's joblib or submitit launcher starts in a process of its own, where
# Hydra resolves the run folder's name (`${hyperlab_run_folder:...}`) before it calls hyperlab's task function; the
# only hyperlab code that has run there by then is the import of that function's module (hyperlab.cli imports this
# one). Both calls are idempotent (tests/helpers.py calls register_schemas again, as tests clear Hydra's store).
register_schemas()
register_resolvers()
