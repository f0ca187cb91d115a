"""Which training loop a run uses: Lightning's, or hyperlab's fast loop. Chosen once, by `choose_loop`, from what
the Trainer, its callbacks and the data ask for; logged by the entry point and recorded in metrics.json.

- **Lightning's loop** (automatic optimization, one mini-batch per `training_step`) keeps every promise of
  Lightning's docs: gradient clipping and accumulation, `limit_*_batches`, `val_check_interval`, `fast_dev_run`,
  `overfit_batches`, `max_steps`, the sanity check, profilers, multi-device strategies, callbacks that act on
  every batch, and any DataLoader or datamodule of your own.
- **The fast loop** (manual optimization over a chunk of `data.batches_per_step` mini-batches per call) runs the
  same steps on the same batches in the same order, so it trains the same weights (tests say so, with dropout and
  data augmentation: see `MNISTDataModule.augmentation_generator`), and pays
  Lightning's per-call bookkeeping once per chunk: an MNIST MLP epoch on a CPU takes 1.1x a plain PyTorch loop's
  time in it, and 1.6x the fast loop's in Lightning's (docs/benchmarks.md, 2026-11-24). It is used whenever none
  of the above is asked for; `log_every_n_steps` it honours itself.
"""

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import (
    BatchSizeFinder,
    GradientAccumulationScheduler,
    LearningRateFinder,
    LearningRateMonitor,
    ModelCheckpoint,
    ProgressBar,
    RichProgressBar,
    Timer,
    TQDMProgressBar,
)
from lightning.pytorch.profilers import PassThroughProfiler
from lightning.pytorch.strategies import SingleDeviceStrategy
from lightning.pytorch.utilities.model_helpers import is_overridden

from hyperlab.callbacks.progress import MiniBatchRichProgressBar, MiniBatchTQDMProgressBar
from hyperlab.compat import checkpoint_acts_per_batch, val_check_duration
from hyperlab.data.base import TensorDataModule
from hyperlab.tasks.base import Task

# hooks that run per mini-batch in Lightning's loop: a callback or task that implements one would see a whole chunk
# per call in the fast loop (or, for the zero_grad and optimizer hooks, never be called)
STAGES = ("train", "validation", "test")
BATCH_HOOKS = tuple(f"on_{stage}_batch_{when}" for stage in STAGES for when in ("start", "end"))
BATCH_HOOKS += ("on_before_zero_grad",)
MODULE_HOOKS = BATCH_HOOKS + (
    "optimizer_step",
    "optimizer_zero_grad",
    "lr_scheduler_step",
    "configure_gradient_clipping",
)
# Lightning callbacks that count batches or steps, or take over the optimization
STEP_CALLBACKS = (GradientAccumulationScheduler, LearningRateFinder, BatchSizeFinder)
# Lightning's progress bars -> the same, counting the fast loop's mini-batches rather than its chunks
MINI_BATCH_BARS = {RichProgressBar: MiniBatchRichProgressBar, TQDMProgressBar: MiniBatchTQDMProgressBar}


def choose_loop(task: Task, trainer: L.Trainer, datamodule: Any) -> str:
    """Set `task.automatic_optimization` (the one switch: the datamodule serves chunks to the fast loop alone), have
    the progress bar count mini-batches rather than chunks, and return what was chosen and why, for the log."""
    reasons = lightning_loop_reasons(task, trainer, datamodule)
    task.automatic_optimization = bool(reasons)
    count_mini_batches(trainer)
    if reasons:
        return f"Lightning's loop, one mini-batch per step ({'; '.join(reasons)})"
    return f"the fast loop, chunks of {datamodule.batches_per_step} mini-batches per Lightning step"


def count_mini_batches(trainer: L.Trainer) -> None:
    """Make the run's progress bar count mini-batches in either loop, if it is one of Lightning's own: the default
    bar (`trainer.enable_progress_bar`) or one the config names. Its class becomes the subclass that counts them
    (`callbacks.progress`): the same object, so the settings it was given (theme, refresh rate) stay. A bar of any
    other class is left as it is (in the fast loop it counts chunks)."""
    bar = trainer.progress_bar_callback
    if type(bar) in MINI_BATCH_BARS:
        bar.__class__ = MINI_BATCH_BARS[type(bar)]


def lightning_loop_reasons(task: Task, trainer: L.Trainer, datamodule: Any) -> list[str]:
    """What in this run only Lightning's own loop does as Lightning's docs say (empty: the fast loop may run)."""
    reasons = []
    if not isinstance(datamodule, TensorDataModule):
        reasons.append("the data is not one of hyperlab's in-memory datamodules")
    if trainer.world_size > 1 or not isinstance(trainer.strategy, SingleDeviceStrategy):
        reasons.append(f"the {type(trainer.strategy).__name__} strategy")
    if trainer.fast_dev_run:
        reasons.append(f"trainer.fast_dev_run={trainer.fast_dev_run}")
    else:  # (fast_dev_run sets the limits, max_steps and the sanity check itself)
        reasons += changed(trainer, limit_train_batches=1.0, limit_val_batches=1.0, limit_test_batches=1.0)
        reasons += changed(trainer, val_check_interval=1.0, max_steps=-1)
        if val_check_duration(trainer) is not None:
            reasons.append("trainer.val_check_interval as a duration")
        if trainer.num_sanity_val_steps:
            reasons.append(f"trainer.num_sanity_val_steps={trainer.num_sanity_val_steps}")
    reasons += changed(trainer, accumulate_grad_batches=1, overfit_batches=0.0)
    if trainer.gradient_clip_val:
        reasons.append(f"trainer.gradient_clip_val={trainer.gradient_clip_val}")
    if trainer.min_steps:
        reasons.append(f"trainer.min_steps={trainer.min_steps}")
    if not isinstance(trainer.profiler, PassThroughProfiler):
        reasons.append(f"the {type(trainer.profiler).__name__}")
    reasons += [f"the {type(c).__name__} callback acts on every batch" for c in trainer.callbacks if acts_per_batch(c)]
    reasons += [f"{type(task).__name__}.{hook}" for hook in MODULE_HOOKS if is_overridden(hook, task, parent=Task)]
    return reasons


def changed(trainer: L.Trainer, **defaults: Any) -> list[str]:
    """`trainer.<key>=<value>` for each key whose value is not the given default (1.0 and 1 differ here: a float
    is a share of the batches, an integer a number of batches)."""
    reasons = []
    for key, default in defaults.items():
        value = getattr(trainer, key)
        if value != default or type(value) is not type(default):
            reasons.append(f"trainer.{key}={value}")
    return reasons


def acts_per_batch(callback: L.Callback) -> bool:
    """Whether a callback implements a per-batch hook (in its class, or given to it, as `LambdaCallback` takes them)
    or counts steps. Progress bars (they count what they are given), the timer (it checks the time once per call: a
    chunk late at most), the learning-rate monitor at epochs and checkpointing at epoch ends are indifferent."""
    if isinstance(callback, STEP_CALLBACKS):
        return True
    if isinstance(callback, LearningRateMonitor):
        return callback.logging_interval == "step"
    if isinstance(callback, (ProgressBar, Timer)):
        return False
    if isinstance(callback, ModelCheckpoint):
        return checkpoint_acts_per_batch(callback)
    overridden = any(getattr(type(callback), hook) is not getattr(L.Callback, hook) for hook in BATCH_HOOKS)
    return overridden or any(hook in vars(callback) for hook in BATCH_HOOKS)
