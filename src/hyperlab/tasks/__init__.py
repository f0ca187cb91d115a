"""LightningModules: a network, its loss and optimizer, and the metrics of each stage."""

from hyperlab.errors import Interrupted
from hyperlab.tasks.base import Task
from hyperlab.tasks.classification import ClassificationTask
from hyperlab.tasks.minimisation import MinimisationTask
from hyperlab.tasks.regression import RegressionTask
from hyperlab.tasks.stopping import Diverged

TASKS = {
    "classification": ClassificationTask,
    "regression": RegressionTask,
    "minimisation": MinimisationTask,  # the optimizer playground: a point descending a function
}  # by the kind of data they learn


def metric_mode(metric: str) -> str | None:
    """Which way a logged metric (`val/acc`, `test/r2`) is better, "max" or "min", as the tasks that log it declare;
    None for a name no task logs."""
    name = metric.rsplit("/", 1)[-1]
    modes = {task.metric_modes[name] for task in TASKS.values() if name in task.metric_modes}
    return modes.pop() if len(modes) == 1 else None


__all__ = [
    "ClassificationTask",
    "Diverged",
    "Interrupted",
    "MinimisationTask",
    "RegressionTask",
    "TASKS",
    "Task",
    "metric_mode",
]
