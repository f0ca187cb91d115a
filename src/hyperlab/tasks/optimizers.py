"""The optimizer and learning-rate scheduler a task trains with: built from the classes conf/optimizer/ and
conf/scheduler/ name (torch's), and the ranges of their options, which torch's signatures do not say."""

from typing import Any

import torch

from hyperlab.classes import build_trusted
from hyperlab.options import Options

OPTIMIZER_FILLED = ("params",)  # what the task fills in: the parameters it trains
SCHEDULER_FILLED = ("optimizer",)


def check_optimizer_options(options: Options) -> None:
    """The ranges of the options torch's optimizers share (each checked where the optimizer takes it)."""
    options.require("lr", options.lr > 0, "a number > 0")
    options.require("weight_decay", options.weight_decay >= 0, "a number >= 0")
    if "momentum" in options:
        options.require("momentum", 0 <= options.momentum < 1, "a number in [0, 1)")
    if options.get("nesterov"):
        options.require("nesterov", options.momentum > 0, "true only with momentum > 0")
    if "betas" in options:
        ok = len(options.betas) == 2 and all(0 <= b < 1 for b in options.betas)
        options.require("betas", ok, "two numbers in [0, 1)")
    if "alpha" in options:
        options.require("alpha", 0 < options.alpha < 1, "a number in (0, 1)")


def check_scheduler_options(options: Options) -> None:
    if "step_size" in options:
        options.require("step_size", options.step_size >= 1, "an integer >= 1 (epochs)")
    if "gamma" in options:
        options.require("gamma", 0 < options.gamma <= 1, "a factor in (0, 1]")
    if "T_max" in options:
        options.require("T_max", options.T_max >= 1, "an integer >= 1 (epochs)")
    if "eta_min" in options:
        options.require("eta_min", options.eta_min >= 0, "a number >= 0")


def build_optimizers(parameters: list[torch.nn.Parameter], optimizer: dict[str, Any], scheduler: dict[str, Any]) -> Any:
    """What `configure_optimizers` returns: the optimizer over `parameters`, with its scheduler (stepped per epoch)."""
    built = build_trusted(optimizer, "optimizer", params=parameters)
    if not scheduler:
        return built
    stepper = build_trusted(scheduler, "scheduler", optimizer=built)
    return {"optimizer": built, "lr_scheduler": {"scheduler": stepper, "interval": "epoch"}}
