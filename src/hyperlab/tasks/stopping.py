"""Why a run stops before its last epoch: a signal (`StopRequest`), or a loss that diverged (`Diverged`), NaN or
infinite at a step (`check_finite`), or exploded while staying finite (`check_explosion`)."""

from typing import Any

import torch
from torch import Tensor

from hyperlab.errors import Interrupted

# A finite loss that explodes: an epoch whose mean training loss (and validation loss, when validated) is above
# EXPLOSION_FACTOR times the starting loss is diverged. The starting loss is the first step's, but at least what
# guessing gives (ln of the number of classes, or 1 for a standardised regression target), so that a run that
# starts near zero (a fine-tune of a good model) is not called diverged for a small rise.
EXPLOSION_FACTOR = 10.0


class Diverged(Exception):
    """The training loss became NaN or infinite (the run stops at once, before the optimizer takes the step), or
    exploded while staying finite (see `explosion`)."""


class StopRequest:
    """Set by the entry point's signal handlers. While training, a request is honoured before the next step, never
    in the middle of one (where a lock or a file could be left half-done)."""

    def __init__(self) -> None:
        self.signal: str | None = None  # "SIGINT" or "SIGTERM" once one was received
        self.defer = False  # True while training: the handler only sets `signal`, and `check` raises at a step

    def check(self, step: int) -> None:
        if self.signal is not None:
            raise Interrupted(f"stopped by {self.signal} at step {step}")


def check_finite(loss: Tensor, trainer: Any, distributed: bool) -> None:
    """Raise Diverged, before the optimizer takes the step, if a training loss is NaN or infinite (in any process:
    every process stops together, since one alone would leave the others waiting in all-reduce)."""
    finite = bool(torch.isfinite(loss))
    if distributed:
        finite = trainer.strategy.reduce_boolean_decision(finite, all=True)
    if not finite:
        raise Diverged(f"the training loss became {loss.item()} at step {trainer.global_step + 1}")


def starting_loss(loss: Tensor, trainer: Any, distributed: bool) -> Tensor:
    """The run's first training loss, the same in every process (so the same explosion limit); a tensor, read at
    the epoch's end, so that no step waits for the device."""
    first = loss.detach()
    return trainer.strategy.reduce(first, reduce_op="mean") if distributed else first


def explosion(epoch: int, train_loss: float, val_loss: float | None, first_loss: float, guess: float) -> str | None:
    """Why epoch `epoch` (counted from 1) exploded, or None: its mean training loss, and its validation loss if it
    was validated, are over EXPLOSION_FACTOR times the starting loss (the first step's, `guess` at least)."""
    start = max(first_loss, guess)
    limit = EXPLOSION_FACTOR * start
    if train_loss <= limit or (val_loss is not None and val_loss <= limit):
        return None
    validation = f" (validation loss {val_loss:.4g})" if val_loss is not None else ""
    return (
        f"the loss exploded: epoch {epoch}'s mean training loss {train_loss:.4g} is over {EXPLOSION_FACTOR:g}x the "
        f"starting loss {start:.4g}{validation}"
    )


def check_explosion(task: Any, train_loss: float) -> None:
    """Raise Diverged when the task's epoch just trained exploded (`explosion`): the weights are broken for good,
    though finite."""
    if task.first_loss is None:
        return
    trainer = task.trainer
    val_loss = trainer.callback_metrics.get("val/loss") if trainer.val_dataloaders else None
    val = None if val_loss is None else float(val_loss)
    why = explosion(task.current_epoch + 1, train_loss, val, float(task.first_loss), task.guess_loss())
    if why:
        raise Diverged(why)
