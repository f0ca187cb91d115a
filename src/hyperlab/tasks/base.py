"""The LightningModule every task shares, written out as the course teaches it: forward, loss, zero_grad, backward,
step (Lightning does the last three from the loss `training_step` returns), metrics logged once per epoch.

Metrics are torchmetrics objects, updated with several mini-batches at a time so that no step waits for a device
sync. A task can also train in hyperlab's fast loop, a chunk of mini-batches per `training_step`: that is an
optional piece of its own (`tasks.fast_loop`), which this module does not need. Why a run stops early (a signal, a
diverged loss) is in `tasks.stopping`; what a resumed checkpoint is trusted with, in `tasks.checkpoint_state`.

A task's hyper-parameters are plain values (dicts of numbers and strings), so a checkpoint rebuilds its task
in a fresh process with `load_from_checkpoint` and loads with `weights_only=True`.
"""

import math
import time
from typing import Any

import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch import Tensor
from torchmetrics import MeanMetric, MetricCollection

from hyperlab.classes import build_trusted
from hyperlab.compat import attached_trainer
from hyperlab.data.loaders import inputs_in, pair_in
from hyperlab.tasks.bookkeeping import TaskModule
from hyperlab.tasks.checkpoint_state import history_row, restore_state, saved_state
from hyperlab.tasks.optimizers import build_optimizers
from hyperlab.tasks.precision import optimizer_options
from hyperlab.tasks.stopping import Diverged, StopRequest, check_explosion, check_finite, starting_loss

# the training metrics are updated once per this many mini-batches (the fast loop: once per chunk): a torchmetrics
# update costs ~0.1 ms whatever its size (measured: docs/benchmarks.md)
METRIC_UPDATE_EVERY = 64

# the per-step training loss curve (a progress signal, not a result: metrics.json keeps the epochs' metrics)
STEP_LOSS = "train/loss_step"

NETWORK_FILLED = ("input_shape", "num_outputs")  # a network's arguments that come from the data, not its config


class Task(TaskModule):
    """Network + loss + optimizer + per-epoch metrics. Subclasses define the loss and the metrics."""

    kind: str  # the kind of data it learns: "classification" or "regression"
    # what it logs per stage as "<stage>/<name>" (one of them is monitored), and which way each is better: the one
    # place a metric's direction is declared (checkpoint choice, Optuna's direction, the sweep table's order)
    metric_modes: dict[str, str]
    default_monitor: str  # the one of them that picks the best checkpoint when monitor.metric=auto
    headline: str  # the one of them a run is judged by on the test set (TensorBoard's HParams tab, with the loss)

    def __init__(self, network: dict[str, Any], optimizer: dict[str, Any], scheduler: dict[str, Any],
                 num_outputs: int, metrics: MetricCollection) -> None:  # fmt: skip
        super().__init__()
        self.net = build_trusted(network, "model", num_outputs=num_outputs)
        # what Lightning's model summary runs through the network to count its FLOPs (else "Total FLOPs: 0")
        self.example_input_array = torch.zeros(1, *network["input_shape"])
        self.optimizer_config = optimizer
        self.scheduler_config = scheduler
        self.epoch_steps = 0  # training mini-batches in this epoch so far
        self.distributed = False  # several processes train (decided in on_train_start)
        # the outputs, targets and losses of mini-batches not yet in the training metrics
        self.pending: tuple[list[Tensor], list[Tensor], list[Tensor]] = ([], [], [])
        self.stop = StopRequest()  # the entry point shares its own, which its signal handlers set
        self.run_config: dict[str, Any] = {}  # the config of the run that writes a checkpoint, saved in it
        self.training_started = self.training_seconds = 0.0  # the epochs' wall time (train + validation)
        self.first_loss: float | Tensor | None = None  # the training loss of the run's first step
        # from the checkpoint a run resumes from: its last epoch's metrics
        self.resumed_metrics: dict[str, float] = {}
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

    # -- training -------------------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def on_fit_start(self) -> None:
        self.keep_metrics_in_float32()

    def on_test_start(self) -> None:
        self.keep_metrics_in_float32()

    def on_train_start(self) -> None:
        self.distributed = self.trainer.world_size > 1
        self.training_started = time.perf_counter()

    def on_train_end(self) -> None:
        self.stop_training_clock()

    def stop_training_clock(self) -> None:
        """Add this attempt's training time (a resumed run counts its earlier attempts' too)."""
        if self.training_started:
            self.training_seconds += time.perf_counter() - self.training_started
            self.training_started = 0.0

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        x, y = pair_in(batch)
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
        """The pending mini-batches into the training metrics, in one update."""
        if self.pending[2]:
            self._update("train", *self.pending)
            self.pending = ([], [], [])

    def step_loss(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Forward and loss of one training mini-batch; stops first if asked to, and before the step if the loss is
        no longer finite."""
        if self.stop.signal is not None:
            self.stop.check(self.trainer.global_step + 1)
        self.epoch_steps += 1
        output = self(x)
        loss = self.compute_loss(output, y)
        check_finite(loss, self.trainer, self.distributed)
        if self.first_loss is None:  # read at the epoch's end: no wait for the device here
            self.first_loss = starting_loss(loss, self.trainer, self.distributed)
        return output, loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate("val", [pair_in(batch)])

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate("test", [pair_in(batch)])

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        """Class probabilities (classification) or values in the target's units (regression) of a batch of inputs,
        or of (inputs, targets)."""
        return self.predictions(inputs_in(batch))

    def predictions(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _evaluate(self, stage: str, batches: list[tuple[Tensor, Tensor]]) -> None:
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
        """A validation of the fit into `history` (not the sanity check's, nor `Trainer.validate`'s)."""
        trainer = self.trainer
        if not trainer.sanity_checking and trainer.state.fn == TrainerFn.FITTING:
            self.history.append(history_row(trainer, values))

    def on_train_epoch_start(self) -> None:
        self.epoch_steps = 0

    def on_train_epoch_end(self) -> None:
        if not self.epoch_steps:  # an epoch without a training step: Lightning's loop, resumed with max_steps from
            return  # the end of an epoch, runs that epoch's end again (its metrics were logged the first time)
        self.update_training_metrics()
        train_loss = float(self._log_epoch("train")["train/loss"])
        if not math.isfinite(train_loss):
            raise Diverged(f"the mean training loss of epoch {self.current_epoch + 1} is {train_loss}")
        check_explosion(self, train_loss)

    def on_validation_epoch_end(self) -> None:
        self.add_to_history(self._log_epoch("val"))

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    # -- checkpoints -------------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """What hyperlab-eval and hyperlab-finetune need besides the weights (which task, and the config of the run
        that writes the file), and what a resumed run keeps: the metrics so far, the training time and the starting
        loss. Plain values only."""
        checkpoint["hyperlab"] = saved_state(self)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Resuming: keep what the run had reached (numbers only; the stored config is never taken over: the new
        checkpoints carry the config of the run that writes them). Lightning calls this before it restores the
        callbacks' states, which is where their stored paths are checked (see `keep_own_checkpoint_paths`)."""
        restore_state(self, checkpoint, attached_trainer(self))

    # -- optimisation ----------------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        trainable = [p for p in self.parameters() if p.requires_grad]
        optimizer = optimizer_options(self.optimizer_config, attached_trainer(self), list(self.parameters()))
        return build_optimizers(trainable, optimizer, self.scheduler_config)
