"""LightningModules: a network, its loss and optimizer, and the metrics of each stage."""

from hyperlab.tasks.base import Diverged, Interrupted, Task
from hyperlab.tasks.classification import ClassificationTask
from hyperlab.tasks.regression import RegressionTask

TASKS = {"classification": ClassificationTask, "regression": RegressionTask}  # by the kind of data they learn

__all__ = ["ClassificationTask", "Diverged", "Interrupted", "RegressionTask", "TASKS", "Task"]
