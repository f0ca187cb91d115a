"""Fine-tuning: a new run whose network starts from a checkpoint's weights (the course's "Find, Load, Freeze,
Train, Adjust"). The network's architecture comes from the checkpoint; its output head is replaced when the new
data has another number of outputs (or when `finetune.head=new`); the optimizer is the new run's, with its
learning rate scaled by `finetune.lr_factor`."""

import logging
from typing import Any

from omegaconf import DictConfig

from hyperlab.checkpoints import load_weights
from hyperlab.errors import ConfigError
from hyperlab.tasks import Task

log = logging.getLogger(__name__)
HEAD = "net.head."  # every hyperlab network names its output layer `head`


def finetuning(cfg: DictConfig) -> bool:
    """Whether `cfg` fine-tunes (the finetune group is set, as hyperlab-finetune does) or trains from scratch."""
    return bool(cfg.get("finetune"))


def pretrained_network(checkpoint: dict[str, Any], input_shape: list[int], source: str) -> dict[str, Any]:
    """The checkpoint's network config, checked against the new data's inputs."""
    network = dict(checkpoint["hyper_parameters"]["network"])
    if list(network["input_shape"]) != list(input_shape):
        raise ConfigError(
            f"the checkpoint {source} was trained on inputs of shape {network['input_shape']}; this data's are "
            f"{input_shape}: fine-tuning needs the same inputs"
        )
    return network


def start_from(task: Task, checkpoint: dict[str, Any], head: str, source: str) -> None:
    """Copy the pretrained weights into `task`; the head too unless it is replaced."""
    state = checkpoint["state_dict"]
    new_outputs = task.net.head.weight.shape != state[HEAD + "weight"].shape
    replace = head == "new" or (head == "auto" and new_outputs)
    if head == "keep" and new_outputs:
        raise ConfigError(
            f"finetune.head=keep, but the checkpoint's head gives {state[HEAD + 'weight'].shape[0]} outputs and "
            f"this task needs {task.net.head.weight.shape[0]}: use finetune.head=auto or new"
        )
    load_weights(task, state, source, skip=(HEAD,) if replace else ())
    log.info(f"started from {source}" + (" with a new, freshly initialised head" if replace else ", head included"))
