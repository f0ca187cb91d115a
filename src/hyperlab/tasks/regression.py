"""Regression: MSE or L1 loss on one or more continuous targets."""

from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection, R2Score

from hyperlab.tasks.base import Task
from hyperlab.tasks.precision import HALF_DTYPES

LOSSES = {"mse": nn.MSELoss, "l1": nn.L1Loss}


class RegressionTask(Task):
    """Logs the training loss (in the units the network learns) and MSE, MAE and R² (in the target's own units)
    per epoch for train, val and test."""

    kind = "regression"
    metric_modes = {"loss": "min", "mse": "min", "mae": "min", "r2": "max"}
    default_monitor = "loss"
    headline = "r2"

    def __init__(self, network: dict[str, Any], optimizer: dict[str, Any], scheduler: dict[str, Any],
                 num_targets: int, loss: str, target_mean: float, target_std: float) -> None:  # fmt: skip
        metrics = MetricCollection({"mse": MeanSquaredError(), "mae": MeanAbsoluteError(), "r2": R2Score()})
        super().__init__(network, optimizer, scheduler, num_outputs=num_targets, metrics=metrics)
        self.save_hyperparameters()
        self.set_aside(loss_fn=LOSSES[loss]())
        self.target_mean, self.target_std = target_mean, target_std

    def guess_loss(self) -> float:
        """About the loss of always predicting the mean on a standardised target (its variance is 1)."""
        return 1.0

    @staticmethod
    def data_arguments(datamodule: Any) -> dict[str, Any]:
        """The task's arguments that come from the data."""
        return {
            "num_targets": datamodule.num_targets,
            "target_mean": datamodule.target_mean,
            "target_std": datamodule.target_std,
        }

    def compute_loss(self, output: Tensor, target: Tensor) -> Tensor:
        return self.loss_fn(output, target)

    def metric_inputs(self, output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """The metrics are in the target's own units: the network learns a standardised target when the data
        standardised it (target_mean, target_std), and its outputs are turned back (from float32 at least: a 16-bit
        output or target would round a salary in dollars to the nearest 512 or more)."""
        output, target = self.original_units(at_least_float32(output)), self.original_units(at_least_float32(target))
        if output.shape[-1] == 1:  # one target: the metrics want flat vectors
            return output.squeeze(-1), target.squeeze(-1)
        return output, target

    def original_units(self, values: Tensor) -> Tensor:
        return values * self.target_std + self.target_mean

    def predictions(self, x: Tensor) -> Tensor:
        return self.predict_values(x)

    @torch.no_grad()
    def predict_values(self, x: Tensor) -> Tensor:
        """Predictions in the target's own units, one column per target (float32 at least)."""
        return self.original_units(at_least_float32(self(x)))


def at_least_float32(values: Tensor) -> Tensor:
    """16-bit values (16-true, bf16-true, the mixed precisions' targets) as float32; others as they are."""
    return values.float() if values.dtype in HALF_DTYPES else values
