"""Schemas of the config groups: their keys and types (checked by Hydra when it composes) and their ranges
(checked by `validate` before anything is built).

Each YAML option in `conf/<group>/` extends one schema here (`defaults: [/schema/<group>/<name>@_here_]`), so a
misspelt key or a value of the wrong type is refused by Hydra with the key's full name, and a value out of range
is refused by `validate` with the key's full name and what is allowed. The YAML files hold the values and a
comment on each key; the schemas hold no defaults, so there is one place for each value.
"""

import difflib
import functools
import inspect
import math
import os
import types
import typing
from dataclasses import dataclass, field, fields, make_dataclass
from pathlib import Path
from typing import Any, Optional

import lightning as L
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from lightning.fabric.connector import _PRECISION_INPUT
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hyperlab.data.mnist import DATASETS
from hyperlab.data.tables import SKLEARN_TABLES
from hyperlab.errors import ConfigError
from hyperlab.networks.layers import ACTIVATIONS, INITS
from hyperlab.tasks import TASKS
from hyperlab.tasks.regression import LOSSES


def _find_conf_dir() -> Path:
    """The config tree: inside the package when installed from a wheel, else the repository's `conf/`."""
    packaged = Path(__file__).parent / "conf"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "conf"


CONF_DIR = _find_conf_dir()
MAX_SEED = 2**32 - 1  # what numpy and Lightning's seed_everything accept
# every precision Lightning's Trainer accepts ("64" and 64 alike: the schema's type makes text of a number)
PRECISIONS = list(
    dict.fromkeys(str(value) for kind in typing.get_args(_PRECISION_INPUT) for value in typing.get_args(kind))
)


def compose_config(config_name: str, overrides: list[str]) -> DictConfig:
    """Compose `conf/<config_name>.yaml` with `overrides`, as the command line does (outside a Hydra app)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name, overrides=overrides)


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


# ----------------------------------------------------------------------------------------------- data
@dataclass
class DataSchema(Schema):
    _target_: str = MISSING
    batch_size: int = MISSING
    eval_batch_size: int = MISSING
    batches_per_step: int = MISSING
    seed: int = MISSING
    shuffle_seed: int = MISSING

    def check_ranges(self) -> None:
        self.check("batch_size", self.batch_size >= 1, "an integer >= 1")
        self.check("eval_batch_size", self.eval_batch_size >= 1, "an integer >= 1")
        self.check("batches_per_step", self.batches_per_step >= 1, "an integer >= 1")


@dataclass
class HeldOutSchema(DataSchema):
    """Data with a share held out for validation."""

    val_fraction: float = MISSING

    def check_ranges(self) -> None:
        super().check_ranges()
        self.check("val_fraction", 0 < self.val_fraction < 1, "a fraction in (0, 1)")


@dataclass
class SplitSchema(HeldOutSchema):
    """Data with no official test set: val and test are fractions held out of the whole."""

    test_fraction: float = MISSING

    def check_ranges(self) -> None:
        super().check_ranges()
        self.check("test_fraction", 0 < self.test_fraction < 1, "a fraction in (0, 1)")
        self.check("test_fraction", self.val_fraction + self.test_fraction < 1, "val_fraction + test_fraction < 1")


@dataclass
class DigitsSchema(SplitSchema):
    pass


@dataclass
class LineSchema(SplitSchema):
    num_points: int = MISSING
    gradient: float = MISSING
    intercept: float = MISSING
    noise: float = MISSING
    x_max: float = MISSING

    def check_ranges(self) -> None:
        super().check_ranges()
        self.check("num_points", self.num_points >= 10, "an integer >= 10")
        self.check("noise", self.noise >= 0, "a number >= 0")
        self.check("x_max", self.x_max > 0, "a number > 0")


@dataclass
class BlobsSchema(SplitSchema):
    num_samples: int = MISSING
    num_classes: int = MISSING
    class_sep: float = MISSING

    def check_ranges(self) -> None:
        super().check_ranges()
        self.check("num_samples", self.num_samples >= 30, "an integer >= 30")
        self.check("num_classes", 2 <= self.num_classes <= 4, "an integer from 2 to 4 (two features)")
        self.check("class_sep", self.class_sep > 0, "a number > 0")


@dataclass
class MNISTSchema(HeldOutSchema):
    dataset: str = MISSING
    root: str = MISSING
    download: bool = MISSING
    classes: Optional[list[int]] = MISSING  # noqa: UP045 (OmegaConf reads typing.Optional)
    augment: bool = MISSING
    augment_degrees: float = MISSING
    augment_translate: float = MISSING

    def check_ranges(self) -> None:
        super().check_ranges()
        self.check("dataset", self.dataset in DATASETS, f"one of {list(DATASETS)}")
        chosen = self.classes or list(range(10))
        distinct = len(set(chosen)) == len(chosen) >= 2 and set(chosen) <= set(range(10))
        self.check("classes", distinct, "null (all ten) or at least two different classes from 0 to 9")
        self.check("augment_degrees", 0 <= self.augment_degrees <= 180, "degrees in [0, 180]")
        self.check("augment_translate", 0 <= self.augment_translate <= 0.5, "a share of the size in [0, 0.5]")


@dataclass
class TableSchema(SplitSchema):
    task: str = MISSING

    def check_ranges(self) -> None:
        super().check_ranges()
        kinds = ["auto", *TASKS]
        self.check("task", self.task in kinds, f"one of {kinds}")


@dataclass
class CSVSchema(TableSchema):
    path: str = MISSING
    target: str = MISSING
    drop: list[str] = MISSING
    encoding: str = MISSING
    max_categories: int = MISSING

    def check_ranges(self) -> None:
        super().check_ranges()
        self.check("encoding", self.encoding in ("onehot", "label"), "one of ['onehot', 'label']")
        self.check("max_categories", self.max_categories >= 2, "an integer >= 2")


@dataclass
class SklearnTableSchema(TableSchema):
    name: str = MISSING

    def check_ranges(self) -> None:
        super().check_ranges()
        self.check("name", self.name in SKLEARN_TABLES, f"one of {list(SKLEARN_TABLES)}")


@dataclass
class MultilinearSchema(SplitSchema):
    num_samples: int = MISSING
    num_features: int = MISSING
    weights: Optional[list[float]] = MISSING  # noqa: UP045 (OmegaConf reads typing.Optional)
    bias: float = MISSING
    noise: float = MISSING

    def check_ranges(self) -> None:
        super().check_ranges()
        self.check("num_samples", self.num_samples >= 20, "an integer >= 20")
        self.check("num_features", 1 <= self.num_features <= 16, "an integer from 1 to 16")
        fits = self.weights is None or len(self.weights) == self.num_features
        self.check("weights", fits, f"null or a list of num_features={self.num_features} numbers")
        self.check("noise", self.noise >= 0, "a number >= 0")


# ----------------------------------------------------------------------------------------------- model
@dataclass
class LineModelSchema(Schema):
    _target_: str = MISSING


@dataclass
class NetworkSchema(Schema):
    """The knobs the MLP and the CNN share."""

    _target_: str = MISSING
    hidden: int = MISSING
    dropout: float = MISSING
    activation: str = MISSING
    batchnorm: bool = MISSING
    init: str = MISSING

    def check_ranges(self) -> None:
        self.check("hidden", self.hidden >= 1, "an integer >= 1")
        self.check("dropout", 0 <= self.dropout < 1, "a probability in [0, 1)")
        self.check("activation", self.activation in ACTIVATIONS, f"one of {list(ACTIVATIONS)}")
        self.check("init", self.init in INITS, f"one of {list(INITS)}")


@dataclass
class MLPSchema(NetworkSchema):
    depth: int = MISSING
    taper: float = MISSING

    def check_ranges(self) -> None:
        super().check_ranges()
        self.check("depth", self.depth >= 0, "an integer >= 0 (0 = a linear model)")
        self.check("taper", 0 < self.taper <= 4, "a number in (0, 4]")


@dataclass
class CNNSchema(NetworkSchema):
    channels: list[int] = MISSING
    kernel_size: int = MISSING
    channels_last: bool = MISSING

    def check_ranges(self) -> None:
        super().check_ranges()
        self.check("channels", len(self.channels) >= 1 and min(self.channels) >= 1, "a list of integers >= 1")
        self.check("kernel_size", self.kernel_size >= 1 and self.kernel_size % 2 == 1, "an odd integer >= 1")


# ----------------------------------------------------------------------------------------------- task
@dataclass
class TaskSchema(Schema):
    kind: str = MISSING
    loss: str = MISSING

    def check_ranges(self) -> None:
        kinds = ["auto", *TASKS]
        self.check("kind", self.kind in kinds, f"one of {kinds}")
        self.check("loss", self.loss in LOSSES, f"one of {list(LOSSES)}")


# ----------------------------------------------------------------------------------------------- optimizer
@dataclass
class OptimizerSchema(Schema):
    _target_: str = MISSING
    lr: float = MISSING
    weight_decay: float = MISSING

    def check_ranges(self) -> None:
        self.check("lr", self.lr > 0, "a number > 0")
        self.check("weight_decay", self.weight_decay >= 0, "a number >= 0")


@dataclass
class SGDSchema(OptimizerSchema):
    momentum: float = MISSING
    nesterov: bool = MISSING
    fused: bool = MISSING

    def check_ranges(self) -> None:
        super().check_ranges()
        self.check("momentum", 0 <= self.momentum < 1, "a number in [0, 1)")
        self.check("nesterov", not self.nesterov or self.momentum > 0, "true only with momentum > 0")


@dataclass
class AdamSchema(OptimizerSchema):
    betas: list[float] = MISSING
    fused: bool = MISSING

    def check_ranges(self) -> None:
        super().check_ranges()
        self.check("betas", len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "two numbers in [0, 1)")


@dataclass
class RMSpropSchema(OptimizerSchema):
    alpha: float = MISSING
    momentum: float = MISSING

    def check_ranges(self) -> None:
        super().check_ranges()
        self.check("alpha", 0 < self.alpha < 1, "a number in (0, 1)")
        self.check("momentum", 0 <= self.momentum < 1, "a number in [0, 1)")


# ----------------------------------------------------------------------------------------------- scheduler
@dataclass
class NoSchedulerSchema(Schema):
    pass


@dataclass
class StepLRSchema(Schema):
    _target_: str = MISSING
    step_size: int = MISSING
    gamma: float = MISSING

    def check_ranges(self) -> None:
        self.check("step_size", self.step_size >= 1, "an integer >= 1 (epochs)")
        self.check("gamma", 0 < self.gamma <= 1, "a factor in (0, 1]")


@dataclass
class CosineSchema(Schema):
    _target_: str = MISSING
    T_max: int = MISSING  # noqa: N815 (torch's own argument name)
    eta_min: float = MISSING

    def check_ranges(self) -> None:
        self.check("T_max", self.T_max >= 1, "an integer >= 1 (epochs)")
        self.check("eta_min", self.eta_min >= 0, "a number >= 0")


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

    def check_ranges(self) -> None:
        self.check("top_k", self.top_k >= 1, "an integer >= 1")
        self.check("box_fraction", 0 < self.box_fraction <= 1, "a share of the frame in (0, 1]")


SCHEMAS: dict[str, dict[str, type]] = {
    "data": {
        "digits": DigitsSchema,
        "line": LineSchema,
        "blobs": BlobsSchema,
        "mnist": MNISTSchema,
        "csv": CSVSchema,
        "sklearn": SklearnTableSchema,
        "multilinear": MultilinearSchema,
    },
    "model": {"line": LineModelSchema, "mlp": MLPSchema, "cnn": CNNSchema},
    "task": {"default": TaskSchema},
    "optimizer": {"sgd": SGDSchema, "adam": AdamSchema, "adamw": AdamSchema, "rmsprop": RMSpropSchema},
    "scheduler": {"none": NoSchedulerSchema, "step": StepLRSchema, "cosine": CosineSchema},
    "trainer": {"default": TrainerSchema},
    "finetune": {"none": NoFinetuneSchema, "default": FinetuneSchema},
}
CHECKED_GROUPS = (*SCHEMAS, "monitor")


def register_schemas() -> None:
    """Put every schema in Hydra's ConfigStore as `schema/<group>/<name>` (and the root as `train_schema`)."""
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainSchema)
    store.store(name="predict_schema", node=PredictSchema)
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
    allowed = ["auto", *dict.fromkeys(f"val/{name}" for kind in kinds for name in TASKS[kind].metric_names)]
    if cfg.monitor.metric not in allowed:
        raise ConfigError(
            f"monitor.metric={cfg.monitor.metric!r} is not a metric this task logs: expected one of {allowed}"
        )


@functools.cache
def conf_targets(group: str) -> dict[str, tuple[str, type[Schema]]]:
    """The classes the options of `conf/<group>/` build, by their `_target_`: (the option's name, its schema).
    What a checkpoint may name: its stored config and hyper-parameters are checked against this."""
    found: dict[str, tuple[str, type[Schema]]] = {}
    for path in sorted((CONF_DIR / group).glob("*.yaml")):
        option = OmegaConf.load(path)
        schemas = [d for d in option.get("defaults", []) if isinstance(d, str) and d.startswith(f"/schema/{group}/")]
        target = option.get("_target_")
        if not target or not schemas:
            continue
        schema_name = schemas[0].removeprefix(f"/schema/{group}/").split("@")[0]
        if target not in found or path.stem == schema_name:  # mnist.yaml over fashion_mnist.yaml: the schema's
            found[target] = (path.stem, SCHEMAS[group][schema_name])
    return found


@functools.cache
def conf_group_targets(group: str) -> frozenset[str]:
    """Every `_target_` the options of `conf/<group>/` give (at their top or one level down: callbacks, loggers)."""
    targets = set()
    for path in (CONF_DIR / group).glob("*.yaml"):
        option = OmegaConf.to_container(OmegaConf.load(path))
        nodes = [option, *(value for value in option.values() if isinstance(value, dict))]
        targets.update(node["_target_"] for node in nodes if isinstance(node.get("_target_"), str))
    return frozenset(targets)


def check_values(group: str, values: dict[str, Any]) -> str:
    """Check plain `values` of `group` (read from a file) as the command line's are checked: the option of
    conf/<group>/ that builds the same class, and its schema's keys, types and ranges. Returns the option's name;
    raises ConfigError naming the key."""
    target = values.get("_target_")
    allowed = conf_targets(group)
    if target not in allowed:
        raise ConfigError(f"{group}._target_={target!r} is not allowed: expected one of {sorted(allowed)}")
    option, schema = allowed[target]
    hints = typing.get_type_hints(schema)
    wrong = next((key for key, value in values.items() if key in hints and not fits(value, hints[key])), None)
    if wrong is not None:  # as read: OmegaConf would turn "128" into 128 and "false" into False
        raise ConfigError(f"{group}.{wrong}={values[wrong]!r} is not allowed: expected {type_name(hints[wrong])}")
    try:
        checked = OmegaConf.merge(OmegaConf.structured(schema), values)
        missing = [key for key in checked if OmegaConf.is_missing(checked, key)]
        if missing:
            raise ConfigError(f"{group}.{missing[0]} is required but missing")
        OmegaConf.to_object(checked).check_ranges()
    except _OutOfRange as error:
        raise ConfigError(f"{group}.{error.key}={error.value!r} is not allowed: expected {error.allowed}") from None
    except OmegaConfBaseException as error:
        key = f"{group}.{error.full_key}" if getattr(error, "full_key", None) else group
        reason = str(getattr(error, "msg", error)).strip().splitlines()[0]
        raise ConfigError(f"{key} is not allowed: {reason}") from None
    return option


def type_name(annotation: Any) -> str:
    """`int`, `list[int] | None`: an annotation as a user reads it."""
    return annotation.__name__ if isinstance(annotation, type) else str(annotation).replace("typing.", "")


def fits(value: Any, annotation: Any) -> bool:
    """Whether a plain value read from a file has the type a schema or signature names (int, float, str, bool,
    Optional[...], list[...], Any), without conversion."""
    if annotation is Any:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(fits(value, option) for option in typing.get_args(annotation))
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        return isinstance(value, list) and all(fits(v, item) for v in value)
    if annotation is float:
        return type(value) in (int, float) and math.isfinite(value)
    if annotation is type(None):
        return value is None
    return type(value) is annotation


def usual_mode(metric: str) -> str:
    """Which way a metric is better: max for accuracy, F1 and R², min for losses and errors."""
    return "max" if metric.endswith(("acc", "f1", "r2")) else "min"


def optuna_direction(metric: str, mode: str) -> str:
    """Optuna's `direction` from monitor.metric and monitor.mode (conf/hparams_search/optuna.yaml)."""
    return f"{mode if mode != 'auto' else usual_mode(metric)}imize"


def settle_task(cfg: DictConfig, data_kind: str) -> None:
    """Once the data says what it is: `task.kind=auto` takes the data's kind, `monitor.*=auto` that kind's usual
    metric (val/acc, highest; val/loss, lowest). A task forced to another kind than the data's is refused."""
    if cfg.task.kind == "auto":
        cfg.task.kind = data_kind
    elif cfg.task.kind != data_kind:
        hint = f", or data.task={cfg.task.kind} to read the target as {cfg.task.kind}" if "task" in cfg.data else ""
        raise ConfigError(
            f"task={cfg.task.kind} does not fit this data, which is for {data_kind} (use task=auto{hint})"
        )
    if cfg.monitor.metric == "auto":
        cfg.monitor.metric = "val/acc" if data_kind == "classification" else "val/loss"
    if cfg.monitor.mode == "auto":
        cfg.monitor.mode = usual_mode(cfg.monitor.metric)
    allowed = [f"val/{name}" for name in TASKS[data_kind].metric_names]
    if cfg.monitor.metric not in allowed:
        raise ConfigError(f"monitor.metric={cfg.monitor.metric!r} is not logged for {data_kind}: one of {allowed}")


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
    if not OmegaConf.has_resolver("hyperlab_optuna_direction"):
        OmegaConf.register_new_resolver("hyperlab_optuna_direction", optuna_direction)


register_schemas()
register_resolvers()
