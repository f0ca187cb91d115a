"""The fast loop, an optional piece a reader of `tasks.base` can skip: a task that takes it trains a chunk of
mini-batches per `training_step` (manual optimization), stepping the optimizer once per mini-batch itself. That keeps
Lightning's per-call bookkeeping (about 0.3 ms a call) off the per-batch path while the optimizer sees exactly the
batches Lightning's loop would, in the same order: the same weights (tests/test_training_loops.py).

`use_fast_loop` gives a built task this loop, before the Trainer is built (`tasks.loop.choose_loop` decides), and has
the datamodule serve chunks; `use_lightning_loop` gives it back Lightning's. The task's class becomes the subclass
`FastLoop + its class` (the same object, so its weights and settings stay), and back.

Lightning counts one step per `training_step` call, which is one per chunk here, and logs epoch metrics at that
count: while fitting, a task in the fast loop sends what it logs to the loggers itself, at the step count of
mini-batches that Lightning's loop would log at (`log`, `send_logged`), so epoch metrics, figures and the per-step
curve share one step axis in either loop. `Trainer.test` and `Trainer.validate` log through Lightning, which returns
what they logged, given that step as a logged `step` (`log_at_mini_batch_step`).
"""

import functools
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.precision import DoublePrecision, HalfPrecision, MixedPrecision, Precision
from lightning.pytorch.strategies import SingleDeviceStrategy
from lightning.pytorch.trainer.states import TrainerFn
from torch import Tensor

from hyperlab.data.base import TensorDataModule
from hyperlab.data.loaders import Batch, Chunk
from hyperlab.loggers.tensorboard import epoch_end_step
from hyperlab.tasks.base import STEP_LOSS, Task


def backward_hooks_are_idle(trainer: L.Trainer) -> bool:
    """Whether Lightning's `manual_backward` would do nothing but `loss.backward()` in this run.

    It does more only with loss scaling (16-bit mixed precision), a multi-device strategy, or a callback or
    module that implements a backward hook. Otherwise its hook dispatch is pure cost: about 0.07 ms a step, 7%
    of an MNIST MLP epoch on a CPU. The optimizer step always goes through Lightning (it counts global_step).
    """
    plugin = trainer.precision_plugin
    plain_precision = type(plugin) in (Precision, HalfPrecision, DoublePrecision) or (
        type(plugin) is MixedPrecision and plugin.scaler is None
    )
    hooks = ("on_before_backward", "on_after_backward")
    module = trainer.lightning_module
    hooked = any(getattr(type(c), h) is not getattr(L.Callback, h) for c in trainer.callbacks for h in hooks) or any(
        getattr(type(module), h) is not getattr(L.LightningModule, h) for h in (*hooks, "backward")
    )
    return plain_precision and isinstance(trainer.strategy, SingleDeviceStrategy) and not hooked


class FastLoop(Task):
    """What a task does differently in the fast loop; mixed in before the task's own class (`fast_class`)."""

    direct_backward = False  # `loss.backward()` rather than Lightning's `manual_backward` (decided in on_train_start)
    to_loggers: dict[str, Any]  # what it logged since the last `send_logged` (set by `use_fast_loop`)

    def on_train_start(self) -> None:
        super().on_train_start()
        self.direct_backward = backward_hooks_are_idle(self.trainer)

    def training_step(self, chunk: Chunk, batch_idx: int) -> None:
        """The five steps (forward, loss, zero_grad, backward, step) on each mini-batch of a chunk."""
        optimizer = self.optimizers()
        outputs, targets, losses = [], [], []
        for x, y in chunk:
            output, loss = self.step_loss(x, y)
            optimizer.zero_grad(set_to_none=True)
            if self.direct_backward:
                loss.backward()
            else:
                self.manual_backward(loss)
            optimizer.step()
            outputs.append(output.detach())
            targets.append(y)
            losses.append(loss.detach())
        self._update("train", outputs, targets, losses)  # (one metric update per chunk: no device sync per step)
        self.log_step_losses(losses)

    def log_step_losses(self, losses: list[Tensor]) -> None:
        """The per-step loss curve, as Lightning's loop logs `train/loss_step`: the loss of every
        `log_every_n_steps`-th optimizer step, at the step count before it (one device sync per chunk that has one)."""
        every = self.trainer.log_every_n_steps
        if not every or not self.loggers:
            return
        first = self.global_step - len(losses) + 1  # the chunk's first step, counted from 1
        picked = [(first + i - 1, loss) for i, loss in enumerate(losses) if (first + i) % every == 0]
        if not picked:
            return
        values = torch.stack([loss for _, loss in picked]).float().tolist()
        for logger in self.loggers:
            for (step, _), value in zip(picked, values, strict=True):
                logger.log_metrics({STEP_LOSS: value}, step=step)

    def validation_step(self, chunk: list[Batch], batch_idx: int) -> None:
        self._evaluate("val", chunk)

    def test_step(self, chunk: list[Batch], batch_idx: int) -> None:
        self._evaluate("test", chunk)

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        scheduler = self.lr_schedulers()
        if scheduler is not None and self.epoch_steps:  # (manual optimization: Lightning leaves it to the task)
            scheduler.step()
        self.send_logged()

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        if self.trainer.state.fn == TrainerFn.FITTING:
            self.send_logged()
        else:
            self.log_at_mini_batch_step()

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        self.log_at_mini_batch_step()

    def log_at_mini_batch_step(self) -> None:
        """`Trainer.test` and `Trainer.validate` log through Lightning, which returns what they logged, at its own
        step count (here, chunks): a logged `step`, the key Lightning's docs give for the step its loggers get
        (its logger connector), puts them after the mini-batches trained, where Lightning's loop logs
        them (hyperlab.run_record.scalars leaves that key out of the results)."""
        self.log("step", float(self.trainer.global_step))

    def log(self, name: str, value: Any, prog_bar: bool = False, logger: bool | None = None, **options: Any) -> None:
        """While fitting: Lightning's `log` for the progress bar and the callbacks (checkpointing, early stopping),
        and the loggers get the value from `send_logged`, at the step Lightning's loop would log it at (the task's and
        the callbacks' logs alike: a callback's epoch-end hook runs before the task's). Otherwise (`Trainer.test`,
        `Trainer.validate`, whose results are what is logged to loggers) Lightning's `log` as it is."""
        if self.trainer.state.fn != TrainerFn.FITTING:
            super().log(name, value, prog_bar=prog_bar, logger=logger, **options)
            return
        super().log(name, value, prog_bar=prog_bar, logger=False, **options)
        if logger is not False and self.loggers:
            self.to_loggers[name] = value

    def send_logged(self) -> None:
        """What was logged during the fit since the last call, to every logger, with Lightning's `epoch`, at the
        epoch's last step counted from 0: where Lightning's loop logs epoch metrics."""
        logged = self.to_loggers
        if not logged:
            return
        trainer = self.trainer
        step = epoch_end_step(trainer)
        metrics = {name: float(value) for name, value in logged.items()} | {"epoch": trainer.current_epoch}
        for logger in self.loggers:
            logger.log_metrics(metrics, step=step)
            logger.save()
        logged.clear()


@functools.cache
def fast_class(task_class: type[Task]) -> type[FastLoop]:
    """`task_class` in the fast loop: FastLoop's methods first, then the task's own."""
    return type(f"Fast{task_class.__name__}", (FastLoop, task_class), {"__module__": __name__})


def plain_class(task: Task) -> type[Task]:
    """The task's own class, whichever loop it is in."""
    return type(task).__bases__[1] if isinstance(task, FastLoop) else type(task)


def use_fast_loop(task: Task, datamodule: TensorDataModule) -> None:
    """Train `task` in the fast loop, on chunks of `data.batches_per_step` mini-batches that `datamodule` serves."""
    task.__class__ = fast_class(plain_class(task))
    task.automatic_optimization = False
    task.to_loggers = {}  # what the task logged since the last `send_logged`
    datamodule.serve_chunks = True


def use_lightning_loop(task: Task, datamodule: Any) -> None:
    """Train `task` in Lightning's loop (one mini-batch per `training_step`), as a task of its own class."""
    task.__class__ = plain_class(task)
    task.automatic_optimization = True
    if isinstance(datamodule, TensorDataModule):
        datamodule.serve_chunks = False
