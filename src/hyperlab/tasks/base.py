"""The training step every task shares, written out as the course teaches it: forward, loss, zero_grad,
backward, step.

A task trains in one of two loops, which `tasks.loop.choose_loop` picks for a run: Lightning's (automatic
optimization, one mini-batch per `training_step`: what a task does in a Lightning script of your own), or the
fast loop, where a `training_step` receives a chunk of mini-batches and steps the optimizer once per mini-batch
itself. That keeps Lightning's per-call bookkeeping off the per-batch path while the optimizer sees exactly the
batches Lightning's loop would. Metrics are torchmetrics objects, logged once per epoch; the fast loop updates
them once per chunk, so no step waits for a device sync.

A task's hyper-parameters are plain values (dicts of numbers and strings), so a checkpoint rebuilds its task
in a fresh process with `load_from_checkpoint` and loads with `weights_only=True`.
"""

import math
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.precision import DoublePrecision, HalfPrecision, MixedPrecision, Precision
from lightning.pytorch.strategies import SingleDeviceStrategy
from lightning.pytorch.trainer.states import TrainerFn
from torch import Tensor, nn
from torchmetrics import MeanMetric, Metric, MetricCollection

from hyperlab.classes import build_trusted
from hyperlab.compat import attached_trainer, count_stepped_batches
from hyperlab.data.loaders import Batch, batches_in, inputs_in
from hyperlab.errors import Interrupted
from hyperlab.loggers.tensorboard import epoch_end_step
from hyperlab.tasks.optimizers import build_optimizers
from hyperlab.tasks.precision import HALF_DTYPES, optimizer_options


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


CHECKPOINT_PATHS = ("best_model_path", "kth_best_model_path", "last_model_path")


def keep_own_checkpoint_paths(checkpoint: dict[str, Any], trainer: L.Trainer) -> None:
    """Drop the stored state of a ModelCheckpoint that names a file outside this run's checkpoints folder, before
    Lightning restores it: the callback would test that file as "best" and delete the "previous best" it names
    (any path, or any fsspec URL). The callback then starts afresh, as in a new folder."""
    states = checkpoint.get("callbacks", {})
    for callback in trainer.checkpoint_callbacks:
        state = states.get(callback.state_key)
        if not isinstance(state, dict) or callback.dirpath is None:
            continue
        folder = Path(callback.dirpath).resolve()
        paths = [state.get(key) for key in CHECKPOINT_PATHS] + list(state.get("best_k_models", {}))
        if not all(path == "" or is_file_in(path, folder) for path in paths):
            del states[callback.state_key]


def is_file_in(path: Any, folder: Path) -> bool:
    return isinstance(path, str) and "://" not in path and Path(path).resolve().parent == folder


def plain_history(history: Any) -> list[dict[str, float]]:
    """A checkpoint's `history`, numbers only (a file is data: anything else in it is dropped)."""
    rows = history if isinstance(history, list) else []
    return [
        {key: float(value) for key, value in row.items() if isinstance(key, str) and isinstance(value, (int, float))}
        for row in rows
        if isinstance(row, dict)
    ]


class Diverged(Exception):
    """The training loss became NaN or infinite (the run stops at once, before the optimizer takes the step), or
    exploded while staying finite (see `Task.check_explosion`)."""


class StopRequest:
    """Set by the entry point's signal handlers. While training, a request is honoured before the next step, never
    in the middle of one (where a lock or a file could be left half-done)."""

    def __init__(self) -> None:
        self.signal: str | None = None  # "SIGINT" or "SIGTERM" once one was received
        self.defer = False  # True while training: the handler only sets `signal`, and `check` raises at a step

    def check(self, step: int) -> None:
        if self.signal is not None:
            raise Interrupted(f"stopped by {self.signal} at step {step}")


# Lightning's loop updates the training metrics once per this many mini-batches, as the fast loop does once per
# chunk: a torchmetrics update costs ~0.1 ms whatever its size (measured: docs/benchmarks.md)
METRIC_UPDATE_EVERY = 64

# the per-step training loss curve (a progress signal, not a result: metrics.json keeps the epochs' metrics)
STEP_LOSS = "train/loss_step"

# A finite loss that explodes: an epoch whose mean training loss (and validation loss, when validated) is above
# EXPLOSION_FACTOR times the starting loss is diverged. The starting loss is the first step's, but at least what
# guessing gives (ln of the number of classes, or 1 for a standardised regression target), so that a run that
# starts near zero (a fine-tune of a good model) is not called diverged for a small rise.
EXPLOSION_FACTOR = 10.0


NETWORK_FILLED = ("input_shape", "num_outputs")  # a network's arguments that come from the data, not its config


class Task(L.LightningModule):
    """Network + loss + optimizer + per-epoch metrics. Subclasses define the loss and the metrics."""

    kind: str  # the kind of data it learns: "classification" or "regression"
    # what it logs per stage as "<stage>/<name>" (one of them is monitored), and which way each is better: the one
    # place a metric's direction is declared (checkpoint choice, Optuna's direction, the sweep table's order)
    metric_modes: dict[str, str]
    default_monitor: str  # the one of them that picks the best checkpoint when monitor.metric=auto
    headline: str  # the one of them a run is judged by on the test set (TensorBoard's HParams tab, with the loss)

    def __init__(
        self,
        network: dict[str, Any],
        optimizer: dict[str, Any],
        scheduler: dict[str, Any],
        num_outputs: int,
        metrics: MetricCollection,
    ) -> None:
        super().__init__()
        self.aside: dict[str, nn.Module] = {}  # the metrics and the loss function: see `set_aside`
        self.automatic_optimization = True  # Lightning's loop; `choose_loop` switches a run to the fast loop
        self.net = build_trusted(network, "model", num_outputs=num_outputs)
        # what Lightning's model summary runs through the network to count its FLOPs (else "Total FLOPs: 0")
        self.example_input_array = torch.zeros(1, *network["input_shape"])
        self.optimizer_config = optimizer
        self.scheduler_config = scheduler
        self.direct_backward = False  # decided in on_train_start
        self.epoch_steps = 0  # training mini-batches in this epoch so far
        self.distributed = False  # several processes train (decided in on_train_start)
        # Lightning's loop: the outputs, targets and losses of mini-batches not yet in the training metrics
        self.pending: tuple[list[Tensor], list[Tensor], list[Tensor]] = ([], [], [])
        self.stop = StopRequest()  # the entry point shares its own, which its signal handlers set
        self.run_config: dict[str, Any] = {}  # the config of the run that writes a checkpoint, saved in it
        self.training_started = self.training_seconds = 0.0  # the epochs' wall time (train + validation)
        self.first_loss: float | Tensor | None = None  # the training loss of the run's first step
        # from the checkpoint a run resumes from: its last epoch's metrics and its training time so far
        self.resumed_metrics: dict[str, float] = {}
        self.resumed_seconds = 0.0
        # every validation of the fit: {"epoch": 2.0, "step": 79, "val/loss": ..., "val/acc": ...} (metrics.json; the
        # sweep's curves.png); kept in checkpoints, so a resumed run has its whole history
        self.history: list[dict[str, float]] = []
        # the per-epoch metrics; nan_strategy="disable": no per-update NaN check, which would wait for the GPU
        self.set_aside(
            train_loss=MeanMetric(nan_strategy="disable"),
            val_loss=MeanMetric(nan_strategy="disable"),
            test_loss=MeanMetric(nan_strategy="disable"),
            train_metrics=metrics.clone(prefix="train/"),
            val_metrics=metrics.clone(prefix="val/"),
            test_metrics=metrics.clone(prefix="test/"),
        )

    def set_aside(self, **modules: nn.Module) -> None:
        """Keep modules that are the task's bookkeeping (metrics, the loss function) as plain attributes, outside its
        module tree, so that the tree is the network alone: Lightning's model summary lists that tree (its rows and
        "Modules in train mode"). They hold no parameters and put nothing in a checkpoint (torchmetrics' states are not
        persistent), and `_apply` still moves them with the task (`.to(device)`, `.to(dtype)`), as it moves children."""
        for name, module in modules.items():
            object.__setattr__(self, name, module)  # (nn.Module's __setattr__ would register it as a child)
        self.aside.update(modules)

    def _apply(self, fn: Any, recurse: bool = True) -> "Task":
        # torch's one path for .to(), .cuda(), .double(), ... (torchmetrics' Metric overrides it the same way); the one
        # private name of another package used outside hyperlab.compat (an override: tests/test_private_names.py)
        super()._apply(fn, recurse)
        if recurse:
            for module in self.aside.values():
                module._apply(fn)
        return self

    # -- what a subclass provides -------------------------------------------------------------------------
    @staticmethod
    def data_arguments(datamodule: Any) -> dict[str, Any]:
        """The task's arguments that come from the data (number of classes, of targets, ...)."""
        raise NotImplementedError

    def compute_loss(self, output: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def guess_loss(self) -> float:
        """The loss of a network that knows nothing yet (a floor for the starting loss of `check_explosion`)."""
        raise NotImplementedError

    def metric_inputs(self, output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """What the metrics are updated with (e.g. squeezed), given the network's output and the target."""
        return output, target

    @property
    def example_input_array(self) -> Any:
        """The zeros Lightning's model summary runs through the network, in the precision's input dtype (Lightning
        converts every batch it feeds the model, but not this one: 64-true's summary would fail on float32)."""
        example = getattr(self, "example_input", None)
        trainer = attached_trainer(self)
        if trainer is None or example is None:
            return example
        return trainer.precision_plugin.convert_input(example)

    @example_input_array.setter
    def example_input_array(self, example: Any) -> None:
        self.example_input = example

    # -- the loop --------------------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def on_fit_start(self) -> None:
        self.keep_metrics_in_float32()

    def on_test_start(self) -> None:
        self.keep_metrics_in_float32()

    def keep_metrics_in_float32(self) -> None:
        """16-true and bf16-true convert the task with `.to(dtype)`, which torchmetrics lets through to the metrics'
        sums: a float16 sum overflows past 65504 (an MNIST epoch's summed loss), a bfloat16 one stops counting at 256.
        They go back to float32 (once per fit or test: the updates take any dtype)."""
        for metric in (part for module in self.aside.values() for part in module.modules()):
            if isinstance(metric, Metric) and any(
                isinstance(state, Tensor) and state.dtype in HALF_DTYPES for state in metric.metric_state.values()
            ):
                metric.set_dtype(torch.float32)  # (its counts too: exact up to 2**24 per epoch)

    def on_train_start(self) -> None:
        self.direct_backward = backward_hooks_are_idle(self.trainer)
        self.distributed = self.trainer.world_size > 1
        self.training_started = time.perf_counter()

    def on_train_end(self) -> None:
        self.stop_training_clock()

    def stop_training_clock(self) -> None:
        """Add this attempt's training time (a resumed run counts its earlier attempts' too)."""
        if self.training_started:
            self.training_seconds += time.perf_counter() - self.training_started
            self.training_started = 0.0

    def training_step(self, batch: Any, batch_idx: int) -> Tensor | None:
        if not self.automatic_optimization:
            self.train_chunk(batch)
            return None
        x, y = batches_in(batch)[0]
        output, loss = self.step_loss(x, y)
        outputs, targets, losses = self.pending
        outputs.append(output.detach())
        targets.append(y)
        losses.append(loss.detach())
        if len(losses) == METRIC_UPDATE_EVERY:
            self.update_training_metrics()
        every = self.trainer.log_every_n_steps
        if every and (self.trainer.global_step + 1) % every == 0:  # only what Lightning sends to the loggers
            self.log(STEP_LOSS, loss.detach())  # (self.log costs ~0.1 ms: not on every step)
        return loss  # Lightning does zero_grad, backward (divided when accumulating), clipping and step

    def update_training_metrics(self) -> None:
        """Lightning's loop: the pending mini-batches into the training metrics, in one update."""
        if self.pending[2]:
            self._update("train", *self.pending)
            self.pending = ([], [], [])

    def train_chunk(self, batches: list[Batch]) -> None:
        """The fast loop: the five steps on each mini-batch of a chunk."""
        optimizer = self.optimizers()
        outputs, targets, losses = [], [], []
        for x, y in batches:
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
        self._update("train", outputs, targets, losses)
        # Lightning counts the steps it logs at once per call: count each mini-batch's step, as its own loop does,
        # so that the epoch metrics, figures and the per-step curve share one step axis in either loop
        count_stepped_batches(self.trainer, len(losses) - 1)
        self.log_step_losses(losses)

    def step_loss(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Forward and loss of one training mini-batch; stops first if asked to, and before the step if the loss is
        no longer finite."""
        if self.stop.signal is not None:
            self.stop.check(self.trainer.global_step + 1)
        self.epoch_steps += 1
        output = self(x)
        loss = self.compute_loss(output, y)
        finite = bool(torch.isfinite(loss))
        distributed = self.distributed
        if distributed:  # every process stops together (one alone would leave the others waiting in all-reduce)
            finite = self.trainer.strategy.reduce_boolean_decision(finite, all=True)
        if not finite:
            raise Diverged(f"the training loss became {loss.item()} at step {self.trainer.global_step + 1}")
        if self.first_loss is None:  # read at the epoch's end: no wait for the device here
            first = loss.detach()  # (every process gets the same starting loss, so the same explosion limit)
            self.first_loss = self.trainer.strategy.reduce(first, reduce_op="mean") if distributed else first
        return output, loss

    def log_step_losses(self, losses: list[Tensor]) -> None:
        """The fast loop's per-step loss curve, as Lightning's loop logs `train/loss_step`: the loss of every
        `log_every_n_steps`-th optimizer step, at the step count before it (one device sync per chunk that has one)."""
        every = self.trainer.log_every_n_steps
        if not every or not self.loggers:
            return
        first = self.trainer.global_step - len(losses) + 1  # the chunk's first step, counted from 1
        picked = [(first + i - 1, loss) for i, loss in enumerate(losses) if (first + i) % every == 0]
        if not picked:
            return
        values = torch.stack([loss for _, loss in picked]).float().tolist()
        for logger in self.loggers:
            for (step, _), value in zip(picked, values, strict=True):
                logger.log_metrics({STEP_LOSS: value}, step=step)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate("val", batches_in(batch))

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate("test", batches_in(batch))

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        """Class probabilities (classification) or values in the target's units (regression) of a batch of inputs,
        or of (inputs, targets)."""
        return self.predictions(inputs_in(batch))

    def predictions(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _evaluate(self, stage: str, batches: list[Batch]) -> None:
        outputs, targets, losses = [], [], []
        for x, y in batches:
            output = self(x)
            outputs.append(output)
            targets.append(y)
            losses.append(self.compute_loss(output, y))
        self._update(stage, outputs, targets, losses)

    def _stage(self, stage: str) -> tuple[MeanMetric, MetricCollection]:
        return getattr(self, f"{stage}_loss"), getattr(self, f"{stage}_metrics")

    def _update(self, stage: str, outputs: list[Tensor], targets: list[Tensor], losses: list[Tensor]) -> None:
        mean_loss, metrics = self._stage(stage)
        sizes = torch.tensor([len(y) for y in targets], dtype=torch.float32, device=self.device)
        mean_loss.update(torch.stack(losses), sizes)
        metrics.update(*self.metric_inputs(torch.cat(outputs), torch.cat(targets)))

    def _log_epoch(self, stage: str) -> dict[str, Tensor]:
        mean_loss, metrics = self._stage(stage)
        # (torchmetrics reduces across processes: every rank gets the same values)
        values = {f"{stage}/loss": mean_loss.compute(), **metrics.compute()}
        reduce = self.trainer.world_size > 1  # (the same values, averaged: only so Lightning knows they are global)
        self.log_dict(values, sync_dist=reduce)
        mean_loss.reset()
        metrics.reset()
        return values

    def add_to_history(self, values: dict[str, Tensor]) -> None:
        """A validation of the fit into `history`, at its place in epochs (1.0 = the end of the first epoch)."""
        trainer = self.trainer
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:  # (not Trainer.validate)
            return
        batches = trainer.num_training_batches
        done = trainer.fit_loop.epoch_loop.batch_progress.current.ready
        epoch = trainer.current_epoch + (min(done / batches, 1.0) if batches and batches != float("inf") else 1.0)
        numbers = torch.stack([value.detach().float() for value in values.values()]).tolist()  # one device sync
        row = {"epoch": round(epoch, 4), "step": epoch_end_step(trainer)}
        self.history.append(row | {key: round(number, 6) for key, number in zip(values, numbers, strict=True)})

    def check_explosion(self, train_loss: float) -> None:
        """Raise Diverged when this epoch's mean training loss, and the validation loss if this epoch was validated,
        are over EXPLOSION_FACTOR times the starting loss: the weights are broken for good, though finite."""
        if self.first_loss is None:
            return
        start = max(float(self.first_loss), self.guess_loss())
        limit = EXPLOSION_FACTOR * start
        val_loss = self.trainer.callback_metrics.get("val/loss") if self.trainer.val_dataloaders else None
        if train_loss > limit and (val_loss is None or not float(val_loss) <= limit):
            raise Diverged(
                f"the loss exploded: epoch {self.current_epoch + 1}'s mean training loss {train_loss:.4g} is over "
                f"{EXPLOSION_FACTOR:g}x the starting loss {start:.4g}"
                + (f" (validation loss {float(val_loss):.4g})" if val_loss is not None else "")
            )

    def on_train_epoch_start(self) -> None:
        self.epoch_steps = 0

    def on_train_epoch_end(self) -> None:
        if not self.epoch_steps:  # an epoch without a training step: Lightning's loop, resumed with max_steps from
            return  # the end of an epoch, runs that epoch's end again (its metrics were logged the first time)
        self.update_training_metrics()
        train_loss = float(self._log_epoch("train")["train/loss"])
        if not math.isfinite(train_loss):
            raise Diverged(f"the mean training loss of epoch {self.current_epoch + 1} is {train_loss}")
        self.check_explosion(train_loss)
        scheduler = self.lr_schedulers()
        if scheduler is not None and not self.automatic_optimization:  # Lightning's loop steps it itself
            scheduler.step()

    def on_validation_epoch_end(self) -> None:
        self.add_to_history(self._log_epoch("val"))

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    # -- checkpoints -------------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """What hyperlab-eval and hyperlab-finetune need besides the weights (which task, and the config of the run
        that writes the file), and what a resumed run keeps: the metrics so far, the training time and the starting
        loss. Plain values only."""
        training = self.training_seconds
        if self.training_started:
            training += time.perf_counter() - self.training_started
        checkpoint["hyperlab"] = {
            "task": f"{type(self).__module__}.{type(self).__qualname__}",
            "config": self.run_config,
            "metrics": {key: float(value) for key, value in self.trainer.callback_metrics.items()},
            "training_seconds": training,
            "first_loss": None if self.first_loss is None else float(self.first_loss),
            "history": self.history,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Resuming: keep what the run had reached (numbers only; the stored config is never taken over: the new
        checkpoints carry the config of the run that writes them). Lightning calls this before it restores the
        callbacks' states, which is where their stored paths are checked (see `keep_own_checkpoint_paths`)."""
        trainer = attached_trainer(self)
        if trainer is not None:
            keep_own_checkpoint_paths(checkpoint, trainer)
        stored = checkpoint.get("hyperlab", {})
        metrics = stored.get("metrics", {})
        self.resumed_metrics = {
            key: float(value)
            for key, value in (metrics.items() if isinstance(metrics, dict) else [])
            if isinstance(key, str) and isinstance(value, (int, float))
        }
        seconds = stored.get("training_seconds", 0.0)
        self.resumed_seconds = float(seconds) if isinstance(seconds, (int, float)) and seconds >= 0 else 0.0
        self.training_seconds = self.resumed_seconds
        first = stored.get("first_loss")
        self.first_loss = float(first) if isinstance(first, (int, float)) and math.isfinite(first) else None
        self.history = plain_history(stored.get("history"))

    # -- optimisation ----------------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        trainable = [p for p in self.parameters() if p.requires_grad]
        optimizer = optimizer_options(self.optimizer_config, attached_trainer(self), list(self.parameters()))
        return build_optimizers(trainable, optimizer, self.scheduler_config)
