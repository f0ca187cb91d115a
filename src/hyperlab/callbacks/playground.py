"""The optimizer playground's record of a run: the path its point took, written as `<run>/path.json`, drawn as
`figures/path.png` (and TensorBoard's `figures/path`), and logged to TensorBoard step by step (`path/loss`,
`path/x`, `path/y`) when training ends, or when the run diverges. Drawn then, not after testing as the other figures
are: the test loads the best checkpoint, whose point need not be where the run ended."""

from pathlib import Path
from typing import Any

import lightning as L

from hyperlab.callbacks.figures import publish
from hyperlab.classes import config_class
from hyperlab.data.functions import COORDINATES
from hyperlab.sweeps.playground import PathRecord, path_figure
from hyperlab.tasks.minimisation import MinimisationTask
from hyperlab.tasks.stopping import Diverged

OPTIONS_SHOWN = ("lr", "momentum")  # the optimizer's options a path's title names (those it has)


class PathFigure(L.Callback):
    """`resolution`: grid points per axis of the function drawn behind the path."""

    def __init__(self, resolution: int) -> None:
        self.resolution = resolution

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.record(trainer, pl_module, "completed")

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, Diverged):
            self.record(trainer, pl_module, "diverged")

    def record(self, trainer: L.Trainer, pl_module: L.LightningModule, status: str) -> None:
        if not isinstance(pl_module, MinimisationTask) or not trainer.is_global_zero:
            return
        path = path_of(pl_module, status)
        path.write(Path(trainer.default_root_dir))
        log_steps(trainer, path)
        publish(trainer, path_figure(path, self.resolution), "path")


def path_of(task: MinimisationTask, status: str) -> PathRecord:
    """The task's path with the loss at each point and the optimizer that took it."""
    points = task.path()
    losses = [float(task.landscape.height(*point)) for point in points]
    config: dict[str, Any] = task.optimizer_config
    shown = {key: float(config[key]) for key in OPTIONS_SHOWN if isinstance(config.get(key), (int, float))}
    optimizer = config_class("optimizer", config).__name__
    return PathRecord(task.hparams.function, optimizer, shown, points, losses, status, list(range(len(points))))


def log_steps(trainer: L.Trainer, path: PathRecord) -> None:
    """The loss and the point at every step (0: the start) as curves, `path/loss`, `path/x`, `path/y`."""
    for logger in trainer.loggers:
        for step, (point, loss) in enumerate(zip(path.points, path.losses, strict=True)):
            values = {f"path/{name}": value for name, value in zip(COORDINATES, point, strict=False)}
            logger.log_metrics({"path/loss": loss, **values}, step=step)
