"""Lightning's progress bars, counting mini-batches in the fast loop too.

Lightning's bars count the items a loader yields (one per Lightning step); the fast loop's loaders yield chunks of
up to `data.batches_per_step` mini-batches (`data.loaders.Chunked`), so a stock bar would show 14/14 for an MNIST
epoch of 938 mini-batches, and an it/s in chunks. These subclasses take their totals and counts from the chunks'
mini-batches, and behave as Lightning's own with any other loader. `tasks.loop.count_mini_batches` gives a run's
Lightning bar (the default one, or one the config names) these counts; in the fast loop, a learning-rate monitor
logs at the step of mini-batches trained (`MiniBatchLearningRateMonitor`).
"""

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor, ProgressBar, RichProgressBar, TQDMProgressBar
from lightning.pytorch.callbacks.progress.rich_progress import ProcessingSpeedColumn
from rich.progress import Task as RichTask
from rich.text import Text

from hyperlab.compat import learning_rate_stats
from hyperlab.data.loaders import Chunked


def mini_batches(loader: Any, counted: int | float) -> int | float:
    """The mini-batches a stage runs: `counted` (Lightning's count of the loader's items) unless they are chunks."""
    return len(loader.batches) if isinstance(loader, Chunked) else counted


def last_index(loader: Any, batch: Any, batch_idx: int) -> int:
    """The index in the epoch of the last mini-batch of Lightning's item `batch_idx` (its own index, unless a chunk:
    every chunk but the last holds `loader.size` mini-batches)."""
    return batch_idx * loader.size + len(batch) - 1 if isinstance(loader, Chunked) else batch_idx


class CountMiniBatches(ProgressBar):
    """The totals and per-step counts of a Lightning progress bar, in mini-batches (a mixin: see the classes below)."""

    @property
    def total_train_batches(self) -> int | float:
        return mini_batches(self.trainer.train_dataloader, super().total_train_batches)

    @property
    def total_val_batches_current_dataloader(self) -> int | float:
        return mini_batches(self.trainer.val_dataloaders, super().total_val_batches_current_dataloader)

    @property
    def total_test_batches_current_dataloader(self) -> int | float:
        return mini_batches(self.trainer.test_dataloaders, super().total_test_batches_current_dataloader)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        index = last_index(trainer.train_dataloader, batch, batch_idx)
        super().on_train_batch_end(trainer, pl_module, outputs, batch, index)

    def on_validation_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        index = last_index(trainer.val_dataloaders, batch, batch_idx)
        super().on_validation_batch_end(trainer, pl_module, outputs, batch, index, dataloader_idx)

    def on_test_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        index = last_index(trainer.test_dataloaders, batch, batch_idx)
        super().on_test_batch_end(trainer, pl_module, outputs, batch, index, dataloader_idx)


class SpeedColumn(ProcessingSpeedColumn):
    """Lightning's it/s column, with a true rate where rich has no estimate yet: rich's needs two updates of the bar,
    so a stage done in one step (a test set in one chunk) read 0.00it/s. Then: the bar's count over its time."""

    def render(self, task: RichTask) -> Text:
        speed = task.speed
        seconds = task.finished_time or task.elapsed
        if speed is None and seconds:
            speed = task.completed / seconds
        return Text(f"{speed:>.2f}it/s" if speed is not None else "", style=self.style)


class MiniBatchRichProgressBar(CountMiniBatches, RichProgressBar):
    """Lightning's RichProgressBar (its default where rich is installed), counting mini-batches."""

    def configure_columns(self, trainer: Any) -> list:
        columns = super().configure_columns(trainer)
        return [SpeedColumn(self.theme.processing_speed) if type(c) is ProcessingSpeedColumn else c for c in columns]


class MiniBatchTQDMProgressBar(CountMiniBatches, TQDMProgressBar):
    """Lightning's TQDMProgressBar, counting mini-batches."""


class MiniBatchLearningRateMonitor(LearningRateMonitor):
    """Lightning's learning-rate monitor at epoch starts, logging at the mini-batches trained (`global_step`), where
    Lightning's loop logs it, rather than at Lightning's count of the fast loop's chunks."""

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if self.logging_interval == "step":  # (a per-step monitor takes Lightning's loop: tasks.loop)
            return
        stats = learning_rate_stats(self, trainer, "epoch" if self.logging_interval is None else "any")
        for logger in trainer.loggers if stats else ():
            logger.log_metrics(stats, step=trainer.global_step)
