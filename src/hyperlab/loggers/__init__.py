"""Loggers of our own: TensorBoard as a sweep's reader needs it (any other Lightning logger works as Lightning's)."""

from hyperlab.loggers.tensorboard import TensorBoardLogger

__all__ = ["TensorBoardLogger"]
