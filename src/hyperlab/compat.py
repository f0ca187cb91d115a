"""The private names of other packages that hyperlab uses, each behind a small public name of its own: the one
module an upgrade of Lightning or Hydra has to be checked against (tests/test_private_names.py checks each name on
the installed versions, and fails when a module other than this one uses a private name of another package).

Each function's docstring says which package's private name it wraps and why hyperlab needs it.

A leaf that costs nothing to import: it imports nothing of hyperlab, and Lightning and Hydra only inside the
functions, so that `hyperlab.config` refuses a wrong command line before torch is imported.
"""

import typing
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from argparse import ArgumentParser

    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
    from lightning.pytorch.loggers import TensorBoardLogger

# The checkpoint key by which Lightning's `load_from_checkpoint` builds a module with a function the checkpoint names
# (lightning/pytorch/core/saving.py): hyperlab refuses a checkpoint holding it (it never writes one).
INSTANTIATOR_KEY = "_instantiator"

# The module Lightning's `LeafSpec` deprecation warning is raised in (lightning/pytorch/utilities/_pytree.py), as
# `warnings.filterwarnings(module=...)` matches it: hyperlab.quiet silences that warning there alone.
PYTREE_MODULE = r"lightning\.pytorch\.utilities\._pytree\Z"

# The trial system attributes optuna-integration's pruning callback writes for a DDP run, whose processes can't report
# to the trial themselves (`_PRUNED_KEY`, `_EPOCH_KEY`, `_INTERMEDIATE_VALUE` in
# optuna_integration/pytorch_lightning/pytorch_lightning.py): hyperlab.callbacks.pruning reads why the trial was
# pruned from them. Copied, so that importing this module imports no optuna.
PRUNED_KEY, EPOCH_KEY, INTERMEDIATE_KEY = "ddp_pl:pruned", "ddp_pl:epoch", "ddp_pl:intermediate_value"


def hydra_args_parser() -> "ArgumentParser":
    """Hydra's command-line parser (hydra-core's `hydra._internal.utils.get_args_parser`): hyperlab reads the command
    line's flags and overrides with it before Hydra runs, to refuse a wrong config before torch is imported."""
    from hydra._internal.utils import get_args_parser

    return get_args_parser()


def precision_inputs() -> list[str]:
    """Every precision Lightning's Trainer accepts, as text, in Lightning's order ("64" and 64 alike): the values of
    lightning's `lightning.fabric.connector._PRECISION_INPUT`, Lightning's one list of them, which the config's check
    refuses an unknown `trainer.precision` by (before any model is built)."""
    from lightning.fabric.connector import _PRECISION_INPUT

    kinds = typing.get_args(_PRECISION_INPUT)
    return list(dict.fromkeys(str(value) for kind in kinds for value in typing.get_args(kind)))


def is_spawn_launcher(launcher: Any) -> bool:
    """Whether a strategy's launcher starts its processes itself (ddp_spawn: lightning's
    `lightning.pytorch.strategies.launchers._MultiProcessingLauncher`): the main process then has no trained
    model, and hyperlab.train reads the run's progress from its checkpoint instead."""
    from lightning.pytorch.strategies.launchers import _MultiProcessingLauncher

    return isinstance(launcher, _MultiProcessingLauncher)


def is_script_launcher(launcher: Any) -> bool:
    """Whether a strategy's launcher re-runs the command line for its other processes (ddp: lightning's
    `lightning.pytorch.strategies.launchers._SubprocessScriptLauncher`, whose `cluster_environment` says whether a
    cluster starts them instead): hyperlab.train refuses it in a sweep, which it would re-run whole."""
    from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher

    return isinstance(launcher, _SubprocessScriptLauncher)


def checkpoint_acts_per_batch(callback: "ModelCheckpoint") -> bool:
    """Whether a ModelCheckpoint saves every n training steps or every so long (lightning's
    `ModelCheckpoint._every_n_train_steps` and `_train_time_interval`, which it has no public reader for): such a
    callback acts on every batch, which only Lightning's loop calls it on."""
    return bool(callback._every_n_train_steps or callback._train_time_interval)


def attached_trainer(module: "L.LightningModule") -> "L.Trainer | None":
    """The Trainer a LightningModule is attached to, or None (lightning's `LightningModule._trainer`; its public
    `.trainer` raises when there is none): a task is also loaded, summarised and tested outside a fit."""
    return module._trainer


def default_hp_metric(logger: "TensorBoardLogger") -> bool:
    """Whether a TensorBoardLogger writes Lightning's placeholder HParams record when a fit starts (lightning's
    `TensorBoardLogger._default_hp_metric`, its argument `default_hp_metric`): hyperlab's logger refuses it, since
    it writes the run's own record at its end."""
    return logger._default_hp_metric


def logger_prefix(logger: "TensorBoardLogger") -> str:
    """The prefix a TensorBoardLogger puts before every metric's name (lightning's `TensorBoardLogger._prefix`, its
    argument `prefix`): hyperlab's logger refuses one, since its HParams records name the curves by their tags."""
    return logger._prefix


def learning_rate_stats(monitor: "LearningRateMonitor", trainer: "L.Trainer", interval: str) -> dict[str, float]:
    """What a LearningRateMonitor logs at an epoch's start, under its own names (`lr-Adam`, momentum, weight decay):
    lightning's `LearningRateMonitor._extract_stats`, which it logs at Lightning's step count. The fast loop's count
    is of chunks, so hyperlab.callbacks.progress.MiniBatchLearningRateMonitor logs them at the mini-batch step."""
    return monitor._extract_stats(trainer, interval)
