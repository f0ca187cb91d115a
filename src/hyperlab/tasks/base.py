"""The training loop every task shares, written out as the course teaches it.

Each `training_step` receives a chunk of mini-batches (see `data.loaders`) and runs the five steps on each:
forward, loss, zero_grad, backward, step. That keeps Lightning's per-call bookkeeping off the per-batch path
while the optimizer still sees exactly the batches a plain loop would. Metrics are torchmetrics objects updated
once per chunk and logged once per epoch, so no step waits for a device sync.

A task's hyper-parameters are plain values (dicts of numbers and strings), so a checkpoint rebuilds its task
in a fresh process with `load_from_checkpoint` and loads with `weights_only=True`.
"""

import time
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from hydra.utils import get_class
from lightning.pytorch.plugins.precision import DoublePrecision, HalfPrecision, MixedPrecision, Precision
from lightning.pytorch.strategies import SingleDeviceStrategy
from torch import Tensor
from torchmetrics import MeanMetric, MetricCollection

from hyperlab.data.loaders import Batch
from hyperlab.networks import CNN, MLP, LineModel

NETWORKS = (MLP, CNN, LineModel)


def build_trusted(config: dict[str, Any], allowed: Callable[[type], bool], **kwargs: Any) -> Any:
    """Call `config["_target_"]` with the rest of `config` (and `kwargs`) as keyword arguments, only if the target
    is a class that `allowed` accepts. A checkpoint's hyper-parameters may come from anywhere: a `_target_` such
    as `os.system` must never be called, and nested values are passed as they are, never instantiated."""
    options = dict(config)
    target = options.pop("_target_", None)
    try:
        cls = get_class(target)
    except (ValueError, ImportError, AttributeError, TypeError):
        cls = None
    if cls is None or not allowed(cls):
        raise ValueError(f"refusing to build {target!r}: not one of the classes allowed here")
    return cls(**options, **kwargs)


def is_network(cls: type) -> bool:
    return cls in NETWORKS


def is_optimizer(cls: type) -> bool:
    return issubclass(cls, torch.optim.Optimizer)


def is_scheduler(cls: type) -> bool:
    return issubclass(cls, torch.optim.lr_scheduler.LRScheduler)


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


class Diverged(Exception):
    """The training loss became NaN or infinite: the run stops at once, before the optimizer takes the step."""


class Interrupted(Exception):
    """Ctrl-C asked the run to stop: it stops before the next step, where no file or lock is half-written."""


class Task(L.LightningModule):
    """Network + loss + optimizer + per-epoch metrics. Subclasses define the loss and the metrics."""

    kind: str  # the kind of data it learns: "classification" or "regression"
    metric_names: tuple[str, ...]  # what it logs per stage as "<stage>/<name>"; one of them is monitored

    def __init__(
        self,
        network: dict[str, Any],
        optimizer: dict[str, Any],
        scheduler: dict[str, Any],
        num_outputs: int,
        metrics: MetricCollection,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False  # the loop over a chunk's mini-batches is ours, see training_step
        self.net = build_trusted({**network, "num_outputs": num_outputs}, is_network)
        self.optimizer_config = optimizer
        self.scheduler_config = scheduler
        # nan_strategy="disable": no per-update NaN check, which would wait for the GPU
        self.train_loss, self.val_loss, self.test_loss = (MeanMetric(nan_strategy="disable") for _ in range(3))
        self.direct_backward = False  # decided in on_train_start
        self.stop_requested = False  # set by the entry point's Ctrl-C handler
        self.run_config: dict[str, Any] = {}  # the run's resolved config, saved in every checkpoint
        self.training_started = self.training_seconds = 0.0  # the epochs' wall time (train + validation)
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")

    # -- what a subclass provides -------------------------------------------------------------------------
    @staticmethod
    def data_arguments(datamodule: Any) -> dict[str, Any]:
        """The task's arguments that come from the data (number of classes, of targets, ...)."""
        raise NotImplementedError

    def compute_loss(self, output: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def metric_inputs(self, output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """What the metrics are updated with (e.g. squeezed), given the network's output and the target."""
        return output, target

    # -- the loop --------------------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def on_train_start(self) -> None:
        self.direct_backward = backward_hooks_are_idle(self.trainer)
        self.training_started = time.perf_counter()

    def on_train_end(self) -> None:
        self.training_seconds = time.perf_counter() - self.training_started

    def training_step(self, batches: list[Batch], batch_idx: int) -> None:
        optimizer = self.optimizers()
        outputs, targets, losses = [], [], []
        for x, y in batches:
            if self.stop_requested:
                raise Interrupted(f"stopped by Ctrl-C at step {self.trainer.global_step + 1}")
            output = self(x)
            loss = self.compute_loss(output, y)
            if not torch.isfinite(loss):
                raise Diverged(f"the training loss became {loss.item()} at step {self.trainer.global_step + 1}")
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

    def validation_step(self, batches: list[Batch], batch_idx: int) -> None:
        self._evaluate("val", batches)

    def test_step(self, batches: list[Batch], batch_idx: int) -> None:
        self._evaluate("test", batches)

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

    def _log_epoch(self, stage: str) -> None:
        mean_loss, metrics = self._stage(stage)
        self.log(f"{stage}/loss", mean_loss.compute())
        self.log_dict(metrics.compute())
        mean_loss.reset()
        metrics.reset()

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    # -- checkpoints -------------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """What hyperlab-eval and hyperlab-finetune need besides the weights: which task, and the run's config."""
        task = f"{type(self).__module__}.{type(self).__qualname__}"
        checkpoint["hyperlab"] = {"task": task, "config": self.run_config}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.run_config = checkpoint.get("hyperlab", {}).get("config", {})

    # -- optimisation ----------------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        trainable = [p for p in self.parameters() if p.requires_grad]
        optimizer = build_trusted(self.optimizer_config, is_optimizer, params=trainable)
        if not self.scheduler_config:
            return optimizer
        scheduler = build_trusted(self.scheduler_config, is_scheduler, optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
