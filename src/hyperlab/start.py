"""How a run's model starts, decided in one place (as nanoGPT's `init_from`): from scratch, resumed from a
checkpoint of its own run, or fine-tuned from another run's checkpoint.

`how_it_starts(cfg, run_dir)` reads and checks the checkpoint before anything is built or written; `build` then
starts the task as it says, and `check_resume` checks a resume's checkpoint against the task and trainer built, before
the run's folder is touched. A fine-tune (the course's "Find, Load, Freeze, Train, Adjust") takes the checkpoint's
network architecture and weights; its output head is replaced when the new data has another number of outputs
(or when `finetune.head=new`); the optimizer is the new run's, with its learning rate scaled by
`finetune.lr_factor`, and `finetune.freeze` names the parameters it freezes.
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightning import Callback, Trainer
from omegaconf import DictConfig

from hyperlab.callbacks.finetuning import FreezeParameters, check_patterns
from hyperlab.checkpoints import (
    check_fits,
    check_inputs_fit,
    load_weights,
    read_checkpoint,
    refuse_link_loop,
)
from hyperlab.classes import option_form
from hyperlab.errors import ConfigError
from hyperlab.networks.pretrained import from_checkpoint
from hyperlab.tasks import Task
from hyperlab.training_state import check_training_state

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Start:
    """Where the weights come from: `scratch`, `resume` (Lightning restores the whole training state from `path`) or
    `finetune` (the network and its weights from `path`); `checkpoint` is the file's checked contents."""

    mode: str
    path: str | None = None
    checkpoint: dict[str, Any] | None = None

    @property
    def resumes(self) -> bool:
        return self.mode == "resume"


def how_it_starts(cfg: DictConfig, run_dir: Path, folder_named: bool = True) -> Start:
    """The run's start, its checkpoint read and checked: to exist, to be safe, and for a resume, to belong to the run
    folder and to have trained no more epochs than asked for (`folder_named`: the user chose the run folder, with
    hydra.run.dir=... or a config composed with paths.output_dir, rather than getting a new one)."""
    if cfg.ckpt_path is None:
        return Start("scratch")
    if cfg.finetune:
        return Start("finetune", str(cfg.ckpt_path), read_checkpoint(cfg.ckpt_path))
    path = run_dir / "checkpoints" / "last.ckpt" if cfg.ckpt_path == "last" else Path(cfg.ckpt_path)
    refuse_link_loop(path)
    if not path.is_file():
        raise ConfigError(
            f"nothing to resume from: {path} does not exist (a run keeps checkpoints/last.ckpt; give its path, "
            "or ckpt_path=last with hydra.run.dir=<the run's folder>)"
        )
    if path.resolve().parent != (run_dir / "checkpoints").resolve() and not folder_named:
        raise ConfigError(
            f"ckpt_path={path} is not in a run's checkpoints/ folder: a resume continues the run the file belongs "
            "to (<run>/checkpoints/<file>); to continue it in another folder, name it: hydra.run.dir=<folder>"
        )
    checkpoint = read_checkpoint(path)
    epochs = int(checkpoint["epoch"]) + 1  # hyperlab's checkpoints are written at the end of an epoch
    if cfg.trainer.max_epochs < epochs:
        raise ConfigError(
            f"trainer.max_epochs={cfg.trainer.max_epochs} is below the {epochs} epochs {path} has already "
            f"trained: give trainer.max_epochs >= {epochs}"
        )
    return Start("resume", str(path), checkpoint)


def check_resume(start: Start, task: Task, trainer: Trainer) -> None:
    """A resume's checkpoint against the task and trainer the run has just built, before its folder is touched (an
    earlier attempt's record set aside): its weights fit the network, and every training state Lightning restores is
    what the run's own optimizer, scheduler, loops and callbacks hold (`check_training_state`)."""
    if not start.resumes:
        return
    assert start.checkpoint is not None and start.path is not None
    check_fits(task, start.checkpoint["state_dict"], start.path)
    check_training_state(start.checkpoint, start.path, task, trainer)


def finetuned_task(start: Start, cfg: DictConfig, task_class: type[Task], input_shape: list[int],
                   optimizer: dict[str, Any], **task_options: Any) -> tuple[Task, list[Callback]]:  # fmt: skip
    """The fine-tune's task: the checkpoint's network started from its weights, the run's optimizer at
    `finetune.lr_factor` times its learning rate, and the callback that freezes what `finetune.freeze` names."""
    assert start.checkpoint is not None and start.path is not None
    network = option_form("model", start.checkpoint["hyper_parameters"]["network"])  # (so its own files name options)
    check_inputs_fit(network, input_shape, start.path)
    optimizer = {**optimizer, "lr": optimizer["lr"] * cfg.finetune.lr_factor}
    with from_checkpoint():  # (a torchvision network: its weights are the checkpoint's, no weights file is read)
        task = task_class(network=network, optimizer=optimizer, **task_options)
    copy_weights(task, start.checkpoint["state_dict"], cfg.finetune.head, start.path)
    check_patterns(task, list(cfg.finetune.freeze))  # (before anything is written)
    return task, [FreezeParameters(list(cfg.finetune.freeze), cfg.finetune.unfreeze_after)]


def copy_weights(task: Task, state: dict[str, Any], head: str, source: str) -> None:
    """Copy the pretrained weights into `task`; the output layer too, unless it is replaced (the network names it:
    `head_name`; a network without one, such as the line model, keeps all its weights)."""
    name = getattr(type(task.net), "head_name", None)
    prefix = f"net.{name}." if name else None
    ours = dict(task.state_dict())
    differs = prefix is not None and any(
        k.startswith(prefix) and k in state and state[k].shape != ours[k].shape for k in ours
    )
    if prefix is None and head == "new":
        raise ConfigError(f"finetune.head=new: {type(task.net).__name__} has no separate output layer to replace")
    if head == "keep" and differs:
        raise ConfigError(
            f"finetune.head=keep, but the checkpoint's output layer ({name}) does not fit this task's outputs: use "
            "finetune.head=auto or new"
        )
    replace = prefix is not None and (head == "new" or (head == "auto" and differs))
    load_weights(task, state, source, skip=(prefix,) if replace else ())
    log.info(f"started from {source}" + (" with a new, freshly initialised head" if replace else ", head included"))
