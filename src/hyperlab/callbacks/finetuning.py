"""Freezing parameters by name for fine-tuning (the course's `named_parameters` exercise), and unfreezing them
after some epochs."""

import fnmatch
import logging

import lightning as L
import torch

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
        for pattern in self.patterns:
            if not fnmatch.filter(names, pattern):
                raise ValueError(f"finetune.freeze pattern {pattern!r} matches no parameter; they are: {names}")
        self.frozen = [name for name in names if any(fnmatch.fnmatch(name, p) for p in self.patterns)]
        for name, parameter in pl_module.named_parameters():
            parameter.requires_grad_(name not in self.frozen)
        log.info(parameter_table(pl_module))

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.unfreeze_after is None or trainer.current_epoch != self.unfreeze_after or not self.frozen:
            return
        optimizer = trainer.optimizers[0]
        parameters = [p for name, p in pl_module.named_parameters() if name in self.frozen]
        for parameter in parameters:
            parameter.requires_grad_(True)
        optimizer.add_param_group({"params": parameters, "lr": optimizer.param_groups[0]["lr"]})
        log.info(f"epoch {trainer.current_epoch}: unfroze {len(parameters)} parameter tensors")
        self.frozen = []


def parameter_table(module: torch.nn.Module) -> str:
    """Which parameters train and which are frozen, with the counts."""
    lines, counts = [], {True: 0, False: 0}
    for name, parameter in module.named_parameters():
        counts[parameter.requires_grad] += parameter.numel()
        state = "trainable" if parameter.requires_grad else "frozen"
        lines.append(f"  {state:<9} {name:<40} {tuple(parameter.shape)}")
    header = f"parameters: {counts[True]:,} trainable, {counts[False]:,} frozen"
    return "\n".join([header, *lines])
