"""`tune=lr_find`: Lightning's learning-rate finder on the experiment as built, instead of training it (the course's
recipe: start with a very small learning rate, raise it after every mini-batch, plot the loss against it, and pick
the rate where the loss falls fastest, before it starts rising).

The finder is Lightning's own (`Tuner(trainer).lr_find`): from `tune.min_lr` it multiplies (or raises) the learning
rate after every optimizer step, records the smoothed training loss, stops once that loss is over
`tune.early_stop_threshold` times its lowest, restores the weights it started from, and suggests the learning rate of
the steepest fall. hyperlab draws the curve (`<run>/figures/lr_find.png` and TensorBoard's `figures/lr_find`),
records it in metrics.json (`lr_find`), and prints the command that trains with the suggestion.
"""

import copy
import logging
import math
import shlex
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.tuner import Tuner
from matplotlib.figure import Figure
from omegaconf import DictConfig

from hyperlab.callbacks.figures import publish
from hyperlab.errors import ConfigError
from hyperlab.experiment import Experiment
from hyperlab.invocation import Invocation
from hyperlab.loggers import end_run
from hyperlab.quiet import LIGHTNING_INFO_LOGGER, DropMessages
from hyperlab.run_record import RunRecord, write_config, write_preprocessing
from hyperlab.tasks.stopping import Diverged, StopRequest

log = logging.getLogger(__name__)
FIGURE = "lr_find"  # <run>/figures/lr_find.png, TensorBoard's image figures/lr_find
SUGGESTED = "lr_find/suggested_lr"  # the suggestion, as a metric every logger of the run gets
SKIPPED_FIRST = 10  # the points Lightning's suggestion leaves out at the start (its smoothed loss is biased there)


def find_learning_rate(experiment: Experiment, run_dir: Path, record: RunRecord, stop: StopRequest,
                       invocation: Invocation) -> dict[str, Any]:  # fmt: skip
    """Run Lightning's finder on `experiment` (its folder locked and its signals handled by `train.train`), draw and
    record the curve, print the suggestion and the command that trains with it (`invocation`: the command that
    started the run, as typed); returns what metrics.json says."""
    cfg, task, trainer = experiment.cfg, experiment.task, experiment.trainer
    task.stop = stop
    log.info(f"training loop: {experiment.loop}")
    write_config(run_dir, task.run_config)
    write_preprocessing(run_dir, experiment.datamodule.state_dict())
    finder = run_finder(experiment, stop)
    suggested = suggestion(finder, cfg.tune.mode)
    lrs, losses = finder.results["lr"][: len(finder.results["loss"])], finder.results["loss"]
    if suggested is None:
        raise ConfigError(
            f"tune=lr_find: the loss was recorded at {len(losses)} learning rates, too few for a suggestion (the first "
            f"10 and the last are left out): raise tune.num_training, or tune.early_stop_threshold if it stopped early"
        )
    figure = publish(trainer, lr_figure(lrs, losses, suggested, cfg.tune.mode), FIGURE)
    for logger in trainer.loggers:
        logger.log_metrics({SUGGESTED: suggested}, step=0)
        logger.finalize("success")
        end_run(logger, "completed")
    record.fields["lr_find"] = {
        "suggested_lr": suggested,
        **{key: cfg.tune[key] for key in ("min_lr", "max_lr", "num_training", "mode", "early_stop_threshold")},
        "steps": len(losses),
        "lrs": [float(f"{lr:.6g}") for lr in lrs],
        "losses": [float(f"{loss:.6g}") for loss in losses],  # smoothed, as the finder compares them
    }
    result = record.write("completed")
    command = training_command(cfg, suggested, invocation)
    if cfg.finetune:  # (the command's optimizer.lr is the suggestion divided by the factor: see training_command)
        command += f"  (x finetune.lr_factor={cfg.finetune.lr_factor}: the optimizer steps at {suggested:g})"
    log.info(
        f"learning-rate finder: {len(losses)} learning rates from {lrs[0]:.3g} to {lrs[-1]:.3g} ({cfg.tune.mode})\n"
        f"suggested learning rate: {suggested:g} (where the loss falls fastest)\n"
        f"figure: {figure}\nmetrics: {run_dir / 'metrics.json'}\ntrain with it: {command}"
    )
    return result


def run_finder(experiment: Experiment, stop: StopRequest) -> Any:
    """`Tuner.lr_find` on the experiment's task and data, with the config's arguments; returns Lightning's finder
    (its `results` and `suggestion()`). `update_attr=False`: the run trains no further, and the task keeps its
    learning rate in its optimizer's config, not as an `lr` attribute."""
    cfg, task, trainer = experiment.cfg, experiment.task, experiment.trainer
    loggers = trainer.loggers
    trainer.fit_loop.max_epochs = -1  # the finder counts steps: a short run's max_epochs must not end the search
    options = {key: cfg.tune[key] for key in ("min_lr", "max_lr", "num_training", "mode", "early_stop_threshold")}
    try:
        stop.defer = True  # a signal stops the search before its next step (see StopRequest)
        with warnings.catch_warnings(), quiet_finder():
            # (a small data set's few mini-batches: Lightning's hint about the logging interval, which is not used here)
            warnings.filterwarnings("ignore", message="The number of training batches .* logging interval")
            # (the finder restores the weights from its temporary checkpoint with its own callback in place, also when
            # the task stopped it: Lightning's notice about the run's callbacks is not about this run's checkpoints)
            warnings.filterwarnings("ignore", message="Be aware that when using `ckpt_path`")
            finder = Tuner(trainer).lr_find(task, datamodule=experiment.datamodule, update_attr=False, **options)
    except Diverged as diverged:
        raise ConfigError(blown_up(trainer, diverged)) from None
    finally:
        stop.defer = False
        trainer.loggers = loggers  # (the finder swaps them for a dummy while it runs)
    stop.check(trainer.global_step)  # a signal during its last step
    return finder


@contextmanager
def quiet_finder() -> Iterator[None]:
    """Lightning's lines about the finder's own bookkeeping (the temporary checkpoint it restores the weights from,
    its stop at `num_training` steps) dropped while it runs: they are not news about the run."""
    loggers = [logging.getLogger(name) for name in (LIGHTNING_INFO_LOGGER, CHECKPOINT_LOGGER)]
    for logger in loggers:
        logger.addFilter(FINDER_CHATTER)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(FINDER_CHATTER)


CHECKPOINT_LOGGER = "lightning.pytorch.trainer.connectors.checkpoint_connector"
FINDER_CHATTER = DropMessages("Restoring states from the checkpoint", "Restored all states from the checkpoint",
                              "`weights_only` was not set", "`Trainer.fit` stopped:")  # fmt: skip


def blown_up(trainer: L.Trainer, diverged: Diverged) -> str:
    """The task stops a run whose loss becomes NaN or infinite, or explodes over an epoch (Diverged), which ends the
    search before the finder's threshold did: the learning rate it reached (its recording callback is the trainer's
    one callback while it runs, where Lightning itself reads it from) bounds the next search."""
    recorder = next((c for c in trainer.callbacks if hasattr(c, "lrs")), None)
    reached = f" at lr {recorder.lrs[-1]:.3g}" if recorder is not None and recorder.lrs else ""
    return (
        f"tune=lr_find: {diverged}{reached}, before the finder's early_stop_threshold ended the search: lower "
        "tune.max_lr (below where it blew up) or tune.early_stop_threshold"
    )


def suggestion(finder: Any, mode: str) -> float | None:
    """Lightning's suggestion (the steepest fall of the smoothed loss), to 3 significant digits: what one types.

    Lightning 2.6 takes the slope against the learning rate itself, also when the rates grow exponentially: the slope
    is then divided by the rate, and the suggestion lands among the smallest rates, where any wiggle of the loss is
    "steepest" (Lightning-AI/pytorch-lightning#21141; fix proposed in #21171). Given the rates' logarithms, and told
    they are evenly spaced (`linear`, in every version), the same suggestion takes the slope along the log axis the
    rates are even on, as the course reads the plot."""
    if mode != "exponential":
        lr = quiet_suggestion(finder)
        return None if lr is None else float(f"{lr:.3g}")
    on_log_axis = copy.copy(finder)
    on_log_axis.mode = "linear"
    on_log_axis.results = {**finder.results, "lr": [math.log10(lr) for lr in finder.results["lr"]]}
    exponent = quiet_suggestion(on_log_axis)
    return None if exponent is None else float(f"{10**exponent:.3g}")


def quiet_suggestion(finder: Any) -> float | None:
    """`finder.suggestion()`, without its error line when there are too few points (find_learning_rate says so)."""
    logger = logging.getLogger("lightning.pytorch.tuner.lr_finder")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        return finder.suggestion(skip_begin=SKIPPED_FIRST)
    finally:
        logger.setLevel(level)


def lr_figure(lrs: list[float], losses: list[float], suggested: float, mode: str) -> Figure:
    """Loss against learning rate (a log axis for the exponential search, whose rates are even on it), the suggestion
    marked and labelled."""
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    axes = figure.add_subplot()
    warm = SKIPPED_FIRST + 1  # (drawn to the first point the suggestion may take)
    axes.plot(lrs[:warm], losses[:warm], color="0.6", linestyle=":", label="first steps: the smoothing warms up")
    axes.plot(lrs[warm - 1 :], losses[warm - 1 :], color="C0", label="training loss (smoothed)")
    if mode == "exponential":
        axes.set_xscale("log")
    nearest = min(range(len(lrs)), key=lambda i: abs(lrs[i] - suggested))
    axes.axvline(suggested, color="red", linestyle="--", linewidth=1)
    axes.plot([suggested], [losses[nearest]], "o", color="red", markersize=8, label=f"suggested lr {suggested:g}")
    axes.annotate(f"suggested lr {suggested:g}", (suggested, losses[nearest]), xytext=(-8, -18),
                  textcoords="offset points", color="red", ha="right")  # fmt: skip
    axes.set_xlabel("learning rate")
    axes.set_ylabel("training loss")
    axes.set_title("learning-rate finder: the loss falls fastest at the suggestion")
    axes.legend(loc="best")
    return figure


def training_command(cfg: DictConfig, suggested: float, invocation: Invocation) -> str:
    """The command that trains this experiment with the suggestion: the command line as typed, `tune` left out and
    `optimizer.lr` set. A fine-tune's learning rate is `optimizer.lr` times `finetune.lr_factor`, and the finder's
    suggestion is the rate the optimizer steps with: `optimizer.lr` is the suggestion divided by the factor."""
    lr = suggested / cfg.finetune.lr_factor if cfg.finetune else suggested
    kept = [item for item in invocation.typed if kept_override(item)]
    return " ".join([invocation.program, *(shlex.quote(item) for item in kept), f"optimizer.lr={lr:.3g}"])


def kept_override(item: str) -> bool:
    """Whether the printed command keeps an override as typed: not `tune=...` (nor `tune.max_lr=...`), not
    `optimizer.lr=...` (it sets that itself)."""
    key = item.split("=", 1)[0].lstrip("+~")
    return key != "optimizer.lr" and key.split(".")[0] != "tune"
