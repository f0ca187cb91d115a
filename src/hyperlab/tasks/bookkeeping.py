"""The LightningModule a task builds on: its bookkeeping (metrics kept outside its module tree and in float32, the
example input of Lightning's model summary), apart from the training that `tasks.base` writes out."""

from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torchmetrics import Metric

from hyperlab.compat import attached_trainer
from hyperlab.tasks.precision import HALF_DTYPES


class TaskModule(L.LightningModule):
    """A LightningModule whose module tree is its network alone (`set_aside`)."""

    def __init__(self) -> None:
        super().__init__()
        self.aside: dict[str, nn.Module] = {}  # the metrics and the loss function: see `set_aside`

    def set_aside(self, **modules: nn.Module) -> None:
        """Keep modules that are the task's bookkeeping (metrics, the loss function) as plain attributes, outside its
        module tree, so that the tree is the network alone: Lightning's model summary lists that tree (its rows and
        "Modules in train mode"). They hold no parameters and put nothing in a checkpoint (torchmetrics' states are not
        persistent), and `_apply` still moves them with the task (`.to(device)`, `.to(dtype)`), as it moves children."""
        for name, module in modules.items():
            object.__setattr__(self, name, module)  # (nn.Module's __setattr__ would register it as a child)
        self.aside.update(modules)

    def _apply(self, fn: Any, recurse: bool = True) -> "TaskModule":
        # torch's one path for .to(), .cuda(), .double(), ... (torchmetrics' Metric overrides it the same way); the one
        # private name of another package used outside hyperlab.compat (an override: tests/test_private_names.py)
        super()._apply(fn, recurse)
        if recurse:
            for module in self.aside.values():
                module._apply(fn)
        return self

    @property
    def example_input_array(self) -> Any:
        """The zeros Lightning's model summary runs through the network, in the precision's input dtype (Lightning
        converts every batch it feeds the model, but not this one: 64-true's summary would fail on float32)."""
        example = getattr(self, "example_input", None)
        trainer = attached_trainer(self)
        if trainer is None or example is None:
            return example
        return trainer.precision_plugin.convert_input(example)

    @example_input_array.setter
    def example_input_array(self, example: Any) -> None:
        self.example_input = example

    def keep_metrics_in_float32(self) -> None:
        """16-true and bf16-true convert the task with `.to(dtype)`, which torchmetrics lets through to the metrics'
        sums: a float16 sum overflows past 65504 (an MNIST epoch's summed loss), a bfloat16 one stops counting at 256.
        They go back to float32 (once per fit or test: the updates take any dtype)."""
        for metric in (part for module in self.aside.values() for part in module.modules()):
            if isinstance(metric, Metric) and any(
                isinstance(state, Tensor) and state.dtype in HALF_DTYPES for state in metric.metric_state.values()
            ):
                metric.set_dtype(torch.float32)  # (its counts too: exact up to 2**24 per epoch)
