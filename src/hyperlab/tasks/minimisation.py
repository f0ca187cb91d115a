"""Minimisation: the optimizer playground's task. The network is a point (hyperlab.networks.Point), the data a
function (hyperlab.data.playground), and the loss the function's height above its global minimum at the point, so
that `optimizer.lr`, `optimizer.momentum` and any optimizer of conf/optimizer/ can be watched descending it through
the same fit, checkpoints, metrics and sweeps as any task.

The task keeps the path: the point every training step starts from (`trail`), kept in its checkpoints so that a
resumed run has the whole of it; hyperlab.callbacks.playground writes and draws it."""

from typing import Any

import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch import Tensor, nn
from torchmetrics import Metric, MetricCollection

from hyperlab.compat import attached_trainer
from hyperlab.data.functions import COORDINATES, FUNCTIONS, Landscape
from hyperlab.errors import ConfigError
from hyperlab.tasks.base import Task

POINT_PREFIX = "params/"  # each validation logs the point as params/x (and params/y)


class Height(nn.Module):
    """f(point) - f(global minimum) for each point (a row of coordinates): 0 at the minimum."""

    def __init__(self, landscape: Landscape) -> None:
        super().__init__()
        self.landscape = landscape

    def forward(self, points: Tensor) -> Tensor:
        return self.landscape.height(*points.unbind(-1))


class DistanceToMinimum(Metric):
    """The mean distance of the points to the nearest global minimum."""

    full_state_update = False

    def __init__(self, minima: tuple[tuple[float, ...], ...]) -> None:
        super().__init__()
        self.minima = torch.tensor(minima, dtype=torch.float64)
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, points: Tensor, target: Tensor) -> None:
        minima = self.minima.to(points.device)
        distances = torch.cdist(points.double(), minima).min(dim=1).values
        self.total += distances.sum()
        self.count += len(points)

    def compute(self) -> Tensor:
        return (self.total / self.count).float()


class MinimisationTask(Task):
    """Logs the loss (the height above the minimum) and the distance to the nearest global minimum for train (the
    points the steps started from), val (the point reached) and test (the best checkpoint's point), and the point's
    coordinates at each validation (`params/x`, `params/y`)."""

    kind = "minimisation"
    metric_modes = {"loss": "min", "distance": "min"}
    default_monitor = "loss"
    headline = "distance"

    def __init__(self, network: dict[str, Any], optimizer: dict[str, Any], scheduler: dict[str, Any],
                 function: str, start_point: list[float]) -> None:  # fmt: skip
        landscape = landscape_of(function)
        metrics = MetricCollection({"distance": DistanceToMinimum(landscape.minima)})
        super().__init__(network, optimizer, scheduler, num_outputs=landscape.dims, metrics=metrics)
        self.save_hyperparameters()
        self.set_aside(loss_fn=Height(landscape))
        self.landscape = landscape
        self.net.move_to(start_point)  # (a resumed or fine-tuned run's checkpoint then puts it where it was)
        self.trail: list[Tensor] = []  # the point each training step started from, in order

    @staticmethod
    def data_arguments(datamodule: Any) -> dict[str, Any]:
        """The task's arguments that come from the data: the function and where it starts."""
        return {"function": datamodule.function, "start_point": datamodule.start_point}

    def compute_loss(self, output: Tensor, target: Tensor) -> Tensor:
        return self.loss_fn(output).mean()

    def guess_loss(self) -> float:
        """The height at the start (at least 1): a run whose loss is ten times that has exploded."""
        return max(float(self.landscape.height(*self.hparams.start_point)), 1.0)

    def step_loss(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Each training step's loss, with the point it starts from added to the trail (no device sync)."""
        self.trail.append(self.net.coordinates().detach().clone())
        return super().step_loss(x, y)

    def path(self) -> list[list[float]]:
        """The start, then the point after each optimizer step the run took (a resumed run's earlier ones too)."""
        start = [list(self.hparams.start_point)]  # (as given: the trail holds it in the model's precision)
        points = start + [point.tolist() for point in self.trail[1:]]
        trainer = attached_trainer(self)
        if trainer is None or trainer.global_step >= len(self.trail):  # (else it stopped before a step)
            points.append(self.net.coordinates().detach().tolist())
        return [[float(value) for value in point] for point in points]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["hyperlab"]["trail"] = [point.tolist() for point in self.trail]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Resuming: the trail so far (numbers only); testing a checkpoint keeps the trail this run took."""
        super().on_load_checkpoint(checkpoint)
        trainer = attached_trainer(self)
        fitting = trainer is not None and trainer.state.fn == TrainerFn.FITTING
        stored = checkpoint.get("hyperlab", {}).get("trail")
        if fitting and isinstance(stored, list):
            dims = self.landscape.dims
            rows = [row for row in stored if isinstance(row, list) and len(row) == dims]
            rows = [row for row in rows if all(isinstance(value, (int, float)) for value in row)]
            self.trail = [torch.tensor(row, dtype=torch.float32) for row in rows]

    def predictions(self, x: Tensor) -> Tensor:
        return self(x).detach()

    def on_validation_epoch_end(self) -> None:
        values = self._log_epoch("val")
        point = self.point_metrics()
        self.log_dict(point)
        self.add_to_history({**values, **point})

    def point_metrics(self) -> dict[str, Tensor]:
        coordinates = self.net.coordinates().detach()
        return {f"{POINT_PREFIX}{name}": value for name, value in zip(COORDINATES, coordinates, strict=False)}


def landscape_of(function: str) -> Landscape:
    if function not in FUNCTIONS:  # (a checkpoint's hyper-parameters, read as data)
        raise ConfigError(f"data.function={function!r} is not allowed: expected one of {list(FUNCTIONS)}")
    return FUNCTIONS[function]
