"""Build what a checked config describes: the data, the task (started as `hyperlab.start` says), the callbacks,
the loggers and the trainer. Nothing here writes into the run folder, so a config the data refuses leaves no trace.

The order is the data's: the datamodule is set up first, because the config's `auto` values (task.kind,
monitor.metric and monitor.mode) are settled by what the data is (`config.with_data`, a new config); everything
after it, callbacks included, is built from that settled config.
"""

import logging
import os
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf

from hyperlab.callbacks.finetuning import pretrained_finetune
from hyperlab.callbacks.pruning import give_study
from hyperlab.checkpoint_contents import stored_run_config
from hyperlab.classes import option_form
from hyperlab.config import with_data
from hyperlab.data import TensorDataModule
from hyperlab.errors import ConfigError, last_line
from hyperlab.invocation import A_SCRIPT, Invocation
from hyperlab.start import Start, finetuned_task
from hyperlab.tasks import TASKS, Task
from hyperlab.tasks.loop import check_built_trainer, choose_loop, take_lightning_loop

log = logging.getLogger(__name__)


@dataclass
class Experiment:
    """Everything a config builds, ready for `trainer.fit(task, datamodule=datamodule)`."""

    cfg: DictConfig  # the config as the data settled it (task.kind, monitor.*)
    datamodule: TensorDataModule
    task: Task
    trainer: L.Trainer
    loop: str  # which training loop it runs, and why (see tasks.loop)


FROM_SCRATCH = Start("scratch")


def build(cfg: DictConfig, start: Start = FROM_SCRATCH, invocation: Invocation = A_SCRIPT) -> Experiment:
    """Instantiate what `cfg` (checked by `validate`) describes; `invocation`: what the command gives the run beyond
    its config (the CPU threads when cfg.threads is null, an Optuna search's study)."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    # Lightning sets this at import so that looking for CUDA does not initialise it (for fork-based DDP, which
    # hyperlab does not use). With it set, the `torch.cuda.is_available()` that Adam calls on every step opens
    # NVML each time: 0.1-0.2 ms, over 10% of an MNIST MLP step on a CPU.
    os.environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)
    threads = cfg.threads if cfg.threads is not None else invocation.threads
    if threads is not None:
        torch.set_num_threads(threads)
    loggers = [build_logger(name, logger) for name, logger in cfg.logger.items()]  # (what they refuse: first)
    datamodule = instantiate(cfg.data, _convert_="all")  # plain lists: its hyper-parameters go into checkpoints
    datamodule.prepare_data()
    datamodule.setup("fit")
    cfg = with_data(cfg, datamodule.kind)
    task, start_callbacks = build_task(cfg, datamodule, start)
    callbacks = [instantiate(callback) for callback in cfg.callbacks.values()] + start_callbacks
    give_study(callbacks, invocation.search_study)
    loop = choose_loop(cfg.trainer, callbacks, task, datamodule)  # (the datamodule batches for it from here on)
    try:
        trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    except InstantiationException as error:  # Lightning refuses the combination (e.g. a GPU on a machine without)
        raise ConfigError(f"trainer: Lightning refuses these settings: {last_line(error.__cause__ or error)}") from None
    task.run_config = stored_run_config(plain(OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])))
    loop = check_built_trainer(loop, trainer, task, datamodule)  # (the strategy Lightning resolved)
    if cfg.tune:  # (tune=lr_find: Lightning's finder needs Lightning's loop, see hyperlab.tuning)
        loop = take_lightning_loop(task, trainer, datamodule)
    return Experiment(cfg, datamodule, task, trainer, loop)


def build_task(cfg: DictConfig, datamodule: TensorDataModule, start: Start) -> tuple[Task, list[L.Callback]]:
    """The task the settled `cfg` describes, and the callbacks its start needs (a fine-tune's freezing). Its network,
    optimizer and scheduler name their option of conf/ (`{"option": "adam", "lr": ...}`): the hyper-parameters its
    checkpoints store name no class (hyperlab.checkpoint_contents)."""
    task_class = TASKS[cfg.task.kind]
    options: dict[str, Any] = {"loss": cfg.task.loss} if cfg.task.kind == "regression" else {}
    options.update(scheduler=option_form("scheduler", plain(cfg.scheduler)), **task_class.data_arguments(datamodule))
    optimizer = option_form("optimizer", plain(cfg.optimizer))
    if start.mode == "finetune":
        return finetuned_task(start, cfg, task_class, datamodule.input_shape, optimizer=optimizer, **options)
    network = {**option_form("model", plain(cfg.model)), "input_shape": datamodule.input_shape}
    if cfg.finetune:  # (no checkpoint: a network with pretrained weights of its own, model=torchvision)
        return pretrained_finetune(cfg.finetune, task_class, network, optimizer, **options)
    return task_class(network=network, optimizer=optimizer, **options), []


def build_logger(name: str, options: DictConfig) -> Logger:
    try:
        return instantiate(options)
    except InstantiationException as error:  # e.g. a logger whose package is not installed
        cause = error.__cause__ or error
        hint = f' (hyperlab\'s extra: pip install -e ".[{name}]")' if isinstance(cause, ImportError) else ""
        raise ConfigError(f"logger.{name}: {last_line(cause)}{hint}") from None


def plain(node: DictConfig) -> dict[str, Any]:
    """A config node as plain values (what a checkpoint's hyper-parameters must be)."""
    return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]
