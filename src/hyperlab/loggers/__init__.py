"""Loggers of our own: TensorBoard as a sweep's reader needs it, Weights & Biases with a run of its own per run (any
other Lightning logger works as Lightning's)."""

from typing import Any

from hyperlab.loggers.tensorboard import TensorBoardLogger
from hyperlab.loggers.wandb import WandbLogger


def end_run(logger: Any, status: str) -> None:
    """After a run's end-of-run record: a logger that keeps a run open (W&B) closes it with the run's `status`."""
    if isinstance(logger, WandbLogger):
        logger.finish(status)


__all__ = ["TensorBoardLogger", "WandbLogger", "end_run"]
