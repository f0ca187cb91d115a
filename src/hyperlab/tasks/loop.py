"""Which training loop a run uses: Lightning's, or hyperlab's fast loop (`tasks.fast_loop`). Chosen once, by
`choose_loop`, from the config (the trainer's settings, the callbacks, the data) before the Trainer is built, so
the datamodule is told how to batch before anything asks it; logged by the entry point and recorded in metrics.json.

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

One thing is only known once the Trainer is built: the strategy and the number of processes, which Lightning
resolves from `trainer.devices`, `trainer.strategy` and the machine (`devices=auto` on a machine of several GPUs is
DDP). `check_built_trainer` reads them there, and can only fall back to Lightning's loop.
"""

import inspect
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
from lightning.pytorch.strategies import SingleDeviceStrategy
from lightning.pytorch.utilities.model_helpers import is_overridden
from omegaconf import DictConfig, OmegaConf

from hyperlab.callbacks.progress import MiniBatchLearningRateMonitor, MiniBatchRichProgressBar, MiniBatchTQDMProgressBar
from hyperlab.compat import checkpoint_acts_per_batch
from hyperlab.data.base import TensorDataModule
from hyperlab.errors import ConfigError
from hyperlab.tasks.base import Task
from hyperlab.tasks.fast_loop import FastLoop, plain_class, use_fast_loop, use_lightning_loop
from hyperlab.trainer_arguments import TRAINER_ARGUMENTS

# hooks that run per mini-batch in Lightning's loop: a callback or task that implements one would see a whole chunk
# per call in the fast loop (or, for the zero_grad and optimizer hooks, never be called)
STAGES = ("train", "validation", "test")
BATCH_HOOKS = tuple(f"on_{stage}_batch_{when}" for stage in STAGES for when in ("start", "end"))
BATCH_HOOKS += ("on_before_zero_grad",)
MODULE_HOOKS = BATCH_HOOKS + (
    "training_step",  # (the fast loop's own step methods would replace a subclass's)
    "validation_step",
    "test_step",
    "optimizer_step",
    "optimizer_zero_grad",
    "lr_scheduler_step",
    "configure_gradient_clipping",
)
# Lightning callbacks that count batches or steps, or take over the optimization
STEP_CALLBACKS = (GradientAccumulationScheduler, LearningRateFinder, BatchSizeFinder)
# Lightning's progress bars -> the same, counting the fast loop's mini-batches rather than its chunks
MINI_BATCH_BARS = {RichProgressBar: MiniBatchRichProgressBar, TQDMProgressBar: MiniBatchTQDMProgressBar}
LIGHTNING_LOOP = "Lightning's loop, one mini-batch per step"
# what the Trainer takes a setting's None for (its signature's default) where that is not None itself
NONE_MEANS = {"limit_train_batches": 1.0, "limit_val_batches": 1.0, "limit_test_batches": 1.0,
              "val_check_interval": 1.0, "num_sanity_val_steps": 2}  # fmt: skip


def choose_loop(trainer_config: DictConfig, callbacks: list[L.Callback], task: Task, datamodule: Any) -> str:
    """Before the Trainer is built: give the task and the datamodule the fast loop unless something in the config
    needs Lightning's (see `lightning_loop_reasons`); returns what was chosen and why, for the log."""
    reasons = lightning_loop_reasons(trainer_values(trainer_config), callbacks, task, datamodule)
    if reasons:
        return f"{LIGHTNING_LOOP} ({'; '.join(reasons)})"
    use_fast_loop(task, datamodule)
    return f"the fast loop, chunks of {datamodule.batches_per_step} mini-batches per Lightning step"


def check_built_trainer(loop: str, trainer: L.Trainer, task: Task, datamodule: Any) -> str:
    """After the Trainer is built: the loop `choose_loop` chose, or Lightning's where the strategy Lightning resolved
    trains in several processes, or is not a single device's (only Lightning's loop does what those do). Also has
    the run's progress bar count mini-batches (`count_mini_batches`), and in the fast loop, a learning-rate monitor
    log at the mini-batch step (callbacks.progress)."""
    count_mini_batches(trainer)
    if not isinstance(task, FastLoop):
        return loop
    if trainer.world_size > 1 or not isinstance(trainer.strategy, SingleDeviceStrategy):
        use_lightning_loop(task, datamodule)
        return f"{LIGHTNING_LOOP} (the {type(trainer.strategy).__name__} strategy)"
    for monitor in (c for c in trainer.callbacks if type(c) is LearningRateMonitor):  # (the same object, as the bars)
        monitor.__class__ = MiniBatchLearningRateMonitor
    return loop


def count_mini_batches(trainer: L.Trainer) -> None:
    """Make the run's progress bar count mini-batches in either loop, if it is one of Lightning's own: the default
    bar (`trainer.enable_progress_bar`) or one the config names. Its class becomes the subclass that counts them
    (`callbacks.progress`): the same object, so the settings it was given (theme, refresh rate) stay. A bar of any
    other class is left as it is (in the fast loop it counts chunks)."""
    bar = trainer.progress_bar_callback
    if type(bar) in MINI_BATCH_BARS:
        bar.__class__ = MINI_BATCH_BARS[type(bar)]


def trainer_values(trainer_config: DictConfig) -> dict[str, Any]:
    """The Trainer's settings as the config gives them, each one it does not give at Lightning's default."""
    defaults = {name: default for name, default in TRAINER_ARGUMENTS.items() if default is not inspect.Parameter.empty}
    given = OmegaConf.to_container(trainer_config, resolve=True) if isinstance(trainer_config, DictConfig) else {}
    values = defaults | {key: value for key, value in dict(given).items() if not key.startswith("_")}
    return values | {key: default for key, default in NONE_MEANS.items() if values.get(key) is None}


def lightning_loop_reasons(
    values: dict[str, Any], callbacks: list[L.Callback], task: Task, datamodule: Any
) -> list[str]:
    """What in this run only Lightning's own loop does as Lightning's docs say (empty: the fast loop may run), from
    the Trainer's settings (`trainer_values`), the callbacks the config builds, the task and the data."""
    reasons = []
    if not isinstance(datamodule, TensorDataModule):
        reasons.append("the data is not one of hyperlab's in-memory datamodules")
    if values["fast_dev_run"]:
        reasons.append(f"trainer.fast_dev_run={values['fast_dev_run']}")
    else:  # (fast_dev_run sets the limits, max_steps and the sanity check itself)
        reasons += changed(values, limit_train_batches=1.0, limit_val_batches=1.0, limit_test_batches=1.0)
        reasons += changed(values, val_check_interval=1.0, max_steps=-1)  # (a duration is a change too)
        if values["num_sanity_val_steps"]:
            reasons.append(f"trainer.num_sanity_val_steps={values['num_sanity_val_steps']}")
    reasons += changed(values, accumulate_grad_batches=1, overfit_batches=0.0)
    for key in ("gradient_clip_val", "min_steps", "profiler"):
        if values[key]:
            reasons.append(f"trainer.{key}={described(values[key])}")
    reasons += [f"the {type(c).__name__} callback acts on every batch" for c in callbacks if acts_per_batch(c)]
    own = plain_class(task)  # (the task's own class: a task already in the fast loop has the loop's methods too)
    reasons += [f"{own.__name__}.{hook}" for hook in MODULE_HOOKS if is_overridden(hook, own, parent=Task)]
    return reasons


def changed(values: dict[str, Any], **defaults: Any) -> list[str]:
    """`trainer.<key>=<value>` for each key whose value is not the given default (1.0 and 1 differ here: a float
    is a share of the batches, an integer a number of batches)."""
    reasons = []
    for key, default in defaults.items():
        value = values[key]
        if value != default or type(value) is not type(default):
            reasons.append(f"trainer.{key}={described(value)}")
    return reasons


def described(value: Any) -> str:
    """A setting as the log names it: a class the config builds (`_target_`) by its last name."""
    if isinstance(value, dict) and "_target_" in value:
        return str(value["_target_"]).rsplit(".", 1)[-1]
    return str(value)


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


def take_lightning_loop(task: Task, trainer: L.Trainer, datamodule: Any) -> str:
    """The loop the finder needs, and why (for the log and metrics.json). Lightning's finder steps its learning-rate
    schedule after every `training_step`, and reads the loss that step returns, through its callback's per-batch
    hooks: hyperlab's fast loop steps the optimizer itself over a chunk of mini-batches and returns no loss, so the
    finder would see one learning rate per chunk and no losses. Lightning's loop (one mini-batch per step) is what
    it was written for. One process: the finder's curve is one process's losses."""
    if trainer.world_size > 1:
        raise ConfigError(
            f"tune=lr_find runs on one device: trainer.devices={trainer.num_devices} trains in {trainer.world_size} "
            "processes (trainer.devices=1)"
        )
    use_lightning_loop(task, datamodule)  # (the task's own class; the datamodule serves single mini-batches)
    return "Lightning's loop, one mini-batch per step (tune=lr_find: the finder sets the lr, reads the loss, per step)"
