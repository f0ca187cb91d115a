"""The config's checks that need torch's or Lightning's classes, the tasks, or this machine (hyperlab.config's
`validate` runs them once `check_declared` has passed, after torch is imported): the options of a class hyperlab
does not declare (torch's optimizers and schedulers, one's own datamodule: `check_values`, also run on what a
checkpoint stores), the task's kind and loss, the metric to monitor, the precision. Each module they need is
imported inside the function that needs it.
"""

from typing import Any

from omegaconf import DictConfig, OmegaConf

from hyperlab.classes import importable_class, trusted_class
from hyperlab.errors import ConfigError
from hyperlab.options import RangeCheck, check_options, declared_options
from hyperlab.schemas import BUILT_GROUPS, in_range, require
from hyperlab.trainer_arguments import lightning_precisions


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


def check_precision(trainer: DictConfig) -> None:
    """trainer.precision: one Lightning takes, and the accelerator the run gets can run (before any model is built)."""
    from hyperlab.tasks.precision import offered_precisions

    known = lightning_precisions()
    require(trainer, "precision", str(trainer.precision) in known, f"one of {known}")
    offered, where = offered_precisions(str(trainer.accelerator), known)
    require(trainer, "precision", str(trainer.precision) in offered, f"one of {offered} {where}")


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


def check_values(group: str, values: dict[str, Any], from_file: bool = True) -> None:
    """Check the values of a group that builds a class: the class must take them. Read from a file, the class must
    be one an option of conf/<group>/ builds (as must a task's network, optimizer and scheduler, which checkpoints
    rebuild); the run's own datamodule may be any class its config names. Raises ConfigError naming the key."""
    filled, ranges = built_group(group)
    target = values.get("_target_")
    cls = trusted_class(group, target) if from_file or group != "data" else importable_class(group, target)
    check_options(cls, values, group, filled, ranges, name=target.rpartition(".")[2])
