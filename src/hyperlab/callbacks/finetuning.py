"""Freezing parameters by name for fine-tuning (the course's `named_parameters` exercise), and unfreezing them
after some epochs; a fine-tune that starts from torchvision's pretrained weights rather than a checkpoint.

Patterns name the task's parameters: `net.<the network's own names>`. Every network's output layer is `net.head.*`;
for `model=torchvision` everything else is `net.backbone.*` (torchvision's model without its output layer), so
`finetune.freeze=[net.backbone.*]` trains the new head alone."""

import fnmatch
import logging
from typing import Any

import lightning as L
import torch

from hyperlab.errors import ConfigError

log = logging.getLogger(__name__)


class FreezeParameters(L.Callback):
    """Freeze the parameters whose names match one of `patterns` (fnmatch, e.g. `net.features.*`) before the
    optimizer is made, log what trains and what doesn't, and unfreeze them after `unfreeze_after` epochs (they
    then join the optimizer with its current learning rate)."""

    def __init__(self, patterns: list[str], unfreeze_after: int | None) -> None:
        self.patterns = list(patterns)
        self.unfreeze_after = unfreeze_after
        self.frozen: list[str] = []

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or self.frozen:
            return
        names = [name for name, _ in pl_module.named_parameters()]
        self.frozen = [name for name in names if any(fnmatch.fnmatch(name, p) for p in self.patterns)]
        for name, parameter in pl_module.named_parameters():
            parameter.requires_grad_(name not in self.frozen)
        log.info(parameter_table(pl_module))

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for norm in frozen_norms(pl_module, self.frozen):  # (their running statistics stay the pretrained ones)
            norm.eval()
        if self.unfreeze_after is None or trainer.current_epoch != self.unfreeze_after or not self.frozen:
            return
        for norm in frozen_norms(pl_module, self.frozen):
            norm.train()
        optimizer = trainer.optimizers[0]
        parameters = [p for name, p in pl_module.named_parameters() if name in self.frozen]
        for parameter in parameters:
            parameter.requires_grad_(True)
        optimizer.add_param_group({"params": parameters, "lr": optimizer.param_groups[0]["lr"]})
        log.info(f"epoch {trainer.current_epoch}: unfroze {len(parameters)} parameter tensors")
        self.frozen = []


def check_patterns(module: torch.nn.Module, patterns: list[str]) -> None:
    """Refuse a `finetune.freeze` pattern that matches no parameter of `module`, naming the parameters there are."""
    names = [name for name, _ in module.named_parameters()]
    for pattern in patterns:
        if not fnmatch.filter(names, pattern):
            groups = list(dict.fromkeys(name.rsplit(".", 1)[0] + ".*" for name in names))
            raise ConfigError(
                f"finetune.freeze: {pattern!r} matches no parameter of the network "
                f"({type(getattr(module, 'net', module)).__name__}), whose parameters are {', '.join(groups)}"
            )


def pretrained_finetune(finetune: Any, task_class: type, network: dict[str, Any], optimizer: dict[str, Any],
                        **task_options: Any) -> tuple[torch.nn.Module, list[L.Callback]]:  # fmt: skip
    """A fine-tune without a checkpoint: the network starts from weights it loads itself (model=torchvision
    model.weights=...), the run's optimizer at `finetune.lr_factor` times its learning rate, and the callback that
    freezes what `finetune.freeze` names (a pattern that matches nothing is refused before anything is written)."""
    optimizer = {**optimizer, "lr": optimizer["lr"] * finetune.lr_factor}
    task = task_class(network=network, optimizer=optimizer, **task_options)
    check_patterns(task, list(finetune.freeze))
    return task, [FreezeParameters(list(finetune.freeze), finetune.unfreeze_after)]


def frozen_norms(module: torch.nn.Module, frozen: list[str]) -> list[torch.nn.Module]:
    """The batch-norm layers whose parameters are all frozen: in eval mode, so that training does not move their
    running statistics (a frozen layer must compute what it computed when it was trained)."""
    norms = []
    for name, sub in module.named_modules():
        own = [f"{name}.{parameter}" for parameter, _ in sub.named_parameters(recurse=False)]
        if isinstance(sub, BATCH_NORMS) and own and all(parameter in frozen for parameter in own):
            norms.append(sub)
    return norms


BATCH_NORMS = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d, torch.nn.SyncBatchNorm)


def parameter_table(module: torch.nn.Module) -> str:
    """Which parameters train and which are frozen, with the counts."""
    lines, counts = [], {True: 0, False: 0}
    for name, parameter in module.named_parameters():
        counts[parameter.requires_grad] += parameter.numel()
        state = "trainable" if parameter.requires_grad else "frozen"
        lines.append(f"  {state:<9} {name:<40} {tuple(parameter.shape)}")
    header = f"parameters: {counts[True]:,} trainable, {counts[False]:,} frozen"
    return "\n".join([header, *lines])
