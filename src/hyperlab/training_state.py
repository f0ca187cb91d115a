"""A resume's training state, checked against the run's own objects before Lightning restores it: a checkpoint
(already read and checked as data by hyperlab.checkpoints.read_checkpoint) holds optimizer, scheduler, loop, callback
and precision states that Lightning loads into the freshly built ones as they are. A crafted optimizer state (an
`exp_avg` of 3 elements for a 128x64 weight) would make the fused Adam step write past its tensors: each state must
have the structure, keys, types and shapes of the same state of the run's own objects (`check_training_state`)."""

import inspect
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from hyperlab.checkpoints import tensor_problem
from hyperlab.classes import target_form
from hyperlab.data.preprocessing import is_number  # (a finite int or float, not a bool)
from hyperlab.errors import ConfigError, DataError
from hyperlab.library_checks import check_values
from hyperlab.tasks import Task

# the settings by which torch picks how to run an optimizer's step; they change neither its state nor its result
STEP_IMPLEMENTATIONS = ("foreach", "fused", "capturable", "differentiable")


def check_training_state(checkpoint: dict[str, Any], path: str | Path, task: Task, trainer: L.Trainer) -> None:
    """Refuse a checkpoint (read by `read_checkpoint`) that a resume of `task` with `trainer` (both just built, not
    yet fitted) cannot restore: its optimizer, scheduler, loop, callback and precision states must each have the
    structure, keys, types and shapes of the same state of the run's own objects, before Lightning restores them."""
    try:
        optimizers, schedulers = fresh_optimizers(task, trainer)
        for key, own in (("optimizer_states", optimizers), ("lr_schedulers", schedulers)):
            if key not in checkpoint:  # (Lightning's KeyError)
                raise ConfigError(f"it has no {key} (saved with weights only): fine-tune from it instead of resuming")
            if len(checkpoint[key]) != len(own):
                raise ConfigError(f"checkpoint.{key} holds {len(checkpoint[key])} states: this run has {len(own)}")
        for index, (state, optimizer) in enumerate(zip(checkpoint["optimizer_states"], optimizers, strict=True)):
            check_optimizer_state(state, optimizer, f"checkpoint.optimizer_states[{index}]")
        for index, (state, scheduler) in enumerate(zip(checkpoint["lr_schedulers"], schedulers, strict=True)):
            where = f"checkpoint.lr_schedulers[{index}]"
            check_like(state, scheduler.state_dict(), where)
            check_scheduler_settings(state, scheduler, task.scheduler_config, where)
        check_loops(checkpoint.get("loops"), trainer)
        for callback in trainer.callbacks:
            state = checkpoint.get("callbacks", {}).get(callback.state_key)
            if state:  # (what Lightning restores)
                check_like(state, callback.state_dict(), f"checkpoint.callbacks.{type(callback).__name__}")
        precision = type(trainer.precision_plugin).__qualname__
        if precision in checkpoint:
            check_like(checkpoint[precision], trainer.precision_plugin.state_dict(), f"checkpoint.{precision}")
    except ConfigError as error:
        raise DataError(f"{path} is refused: {error}") from None


def fresh_optimizers(task: Task, trainer: L.Trainer) -> tuple[list[torch.optim.Optimizer], list[Any]]:
    """The optimizers and schedulers `task` (not yet fitted) trains with under `trainer` (which the options may depend
    on), built anew as Lightning will build them; hyperlab's tasks give one optimizer, with or without a scheduler."""
    task.trainer = trainer
    try:
        configured = task.configure_optimizers()
    finally:
        task.trainer = None  # (as before: `fit` attaches it)
    if isinstance(configured, torch.optim.Optimizer):
        return [configured], []
    return [configured["optimizer"]], [configured["lr_scheduler"]["scheduler"]]


def check_optimizer_state(state: dict[str, Any], optimizer: torch.optim.Optimizer, where: str) -> None:
    """An optimizer's saved state against `optimizer`'s own: its parameter groups (as many, of the same parameters,
    the same settings, of the right kinds and in the ranges its class takes), and each parameter's state (what this
    optimizer keeps after a step with those settings, each tensor of the parameter's own shape). A group's numbers
    are where training had taken them (a scheduler's learning rate at 0 included): torch's own checks apply."""
    own = optimizer.state_dict()
    if set(state) != set(own) or not isinstance(state["param_groups"], list) or not isinstance(state["state"], dict):
        raise ConfigError(f"{where} must hold `state` (a mapping) and `param_groups` (a list), as torch writes")
    if len(state["param_groups"]) != len(own["param_groups"]):
        raise ConfigError(f"{where} has {len(state['param_groups'])} parameter groups: this run's optimizer has "
                          f"{len(own['param_groups'])}")  # fmt: skip
    parameters = [parameter for group in optimizer.param_groups for parameter in group["params"]]
    for index, (group, own_group) in enumerate(zip(state["param_groups"], own["param_groups"], strict=True)):
        group_where = f"{where}.param_groups[{index}]"
        check_group(group, own_group, group_where)
        kinds = state_kinds(optimizer, group, group_where)
        for number in group["params"]:
            if number in state["state"]:
                check_parameter_state(state["state"][number], parameters[number], kinds, f"{where}.state[{number}]")
    unknown = sorted(set(state["state"]) - {number for group in own["param_groups"] for number in group["params"]})
    if unknown:
        raise ConfigError(f"{where}.state[{unknown[0]!r}] is the state of no parameter of this run's optimizer")


def check_group(group: Any, own: dict[str, Any], where: str) -> None:
    """A parameter group: the keys of the run's own, the same parameters, numbers where it has numbers (of any value
    its checks allow), and its own flags (which pick the code the step runs: a flag the file sets could pick code
    this run's device has not)."""
    if not isinstance(group, dict) or set(group) != set(own):
        keys = sorted(group) if isinstance(group, dict) else type(group).__name__
        raise ConfigError(f"{where} has the keys {keys}: this run's optimizer has {sorted(own)}")
    if group["params"] != own["params"]:
        raise ConfigError(f"{where}.params lists other parameters than this run's optimizer (as many, in order)")
    for key, value in own.items():
        if key == "params":
            continue
        if isinstance(value, (bool, str)) or value is None:
            if group[key] != value or type(group[key]) is not type(value):
                raise ConfigError(f"{where}.{key}={group[key]!r} is not allowed: this run's optimizer has {value!r}")
        else:
            check_like(group[key], value, f"{where}.{key}")


def settings_of(optimizer: torch.optim.Optimizer, group: dict[str, Any]) -> dict[str, Any]:
    """The settings of a saved parameter group that the optimizer's class takes (as a config gives them: lists)."""
    taken = set(inspect.signature(type(optimizer)).parameters) - {"params"}
    return {key: list(value) if isinstance(value, tuple) else value for key, value in group.items() if key in taken}


def state_kinds(optimizer: torch.optim.Optimizer, group: dict[str, Any], where: str) -> dict[str, str]:
    """What a parameter's state holds after a step of `optimizer`'s class with `group`'s settings (which its
    constructor checks) on a probe parameter: per key, "tensor" (of the parameter's shape), "scalar" (the step count)
    or "none"."""
    probe = nn.Parameter(torch.zeros(2, 3))
    settings = {key: value for key, value in settings_of(optimizer, group).items() if key not in STEP_IMPLEMENTATIONS}
    try:
        stepped = type(optimizer)([probe], **settings)
        probe.grad = torch.zeros_like(probe)
        stepped.step()
    except (ValueError, RuntimeError, TypeError) as error:  # torch's own checks of the settings
        raise ConfigError(f"{where}: {str(error).splitlines()[0][:200]}") from None
    kinds = {}
    for key, value in stepped.state[probe].items():
        shaped = isinstance(value, torch.Tensor) and value.shape == probe.shape
        kinds[key] = "tensor" if shaped else "none" if value is None else "scalar"
    return kinds


def check_parameter_state(state: Any, parameter: torch.Tensor, kinds: dict[str, str], where: str) -> None:
    """One parameter's optimizer state ({} before its first step): the keys `kinds` names; each tensor dense, real,
    in memory, of exactly the parameter's shape and not overlapping itself (a step writes it in place: a smaller or
    expanded one would be written past its end); the step count one finite number >= 0."""
    if not isinstance(state, dict) or (state and set(state) != set(kinds)):
        keys = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise ConfigError(f"{where} holds {keys}: this run's optimizer keeps {sorted(kinds)}")
    for key, value in state.items():
        kind, at = kinds[key], f"{where}.{key}"
        if kind == "none" and value is not None:
            raise ConfigError(f"{at} must be empty (None) with these settings")
        if kind == "scalar":
            number = value.item() if isinstance(value, torch.Tensor) and value.shape == () else value
            if not is_number(number) or number < 0 or (isinstance(value, torch.Tensor) and tensor_problem(value)):
                raise ConfigError(f"{at} is not allowed: expected a step count, one number >= 0")
        if kind == "tensor":
            problem = "" if isinstance(value, torch.Tensor) else f"a {type(value).__name__}, not a tensor"
            problem = problem or tensor_problem(value)
            if not problem and value.shape != parameter.shape:
                problem = f"of shape {tuple(value.shape)}, not the parameter's {tuple(parameter.shape)}"
            if not problem and not value.is_floating_point():
                problem = f"of {value.dtype}, not floating point"
            if not problem and not value.is_contiguous():  # (an expanded, stride-0 one shares its elements)
                problem = f"a view with strides {value.stride()} (its elements overlap or have gaps)"
            if problem:
                raise ConfigError(f"{at} is {problem}")


def check_scheduler_settings(state: dict[str, Any], scheduler: Any, config: dict[str, Any], where: str) -> None:
    """The saved settings of a scheduler (the ones its class takes), in the ranges hyperlab allows them."""
    taken = inspect.signature(type(scheduler)).parameters
    settings = {key: value for key, value in state.items() if key in taken}
    try:
        check_values("scheduler", {"_target_": target_form("scheduler", config)["_target_"], **settings})
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None


def check_loops(loops: Any, trainer: L.Trainer) -> None:
    """Lightning's loops' progress (the fit loop's is what a resume restores), like the run's own loops'."""
    if loops is None:
        return
    own = {"fit_loop": trainer.fit_loop, "validate_loop": trainer.validate_loop, "test_loop": trainer.test_loop,
           "predict_loop": trainer.predict_loop}  # fmt: skip
    if "fit_loop" not in loops:
        raise ConfigError("checkpoint.loops has no fit_loop")
    for name, loop in own.items():
        if name in loops:
            check_like(loops[name], loop.state_dict(), f"checkpoint.loops.{name}")


def check_like(value: Any, own: Any, where: str) -> None:
    """`value` (from the file) has the structure of `own`, the same state of the run's own object: mappings with its
    keys, sequences of its length, integers >= 0, finite numbers, text and flags where it has them, tensors of its
    shape. Where `own` holds nothing yet (None, or an empty mapping a run fills as it goes: a ModelCheckpoint's best
    score and its best_k_models), a number or a one-number tensor."""
    if isinstance(own, dict) and own:
        if not isinstance(value, dict) or set(value) != set(own):
            keys = sorted(map(str, value)) if isinstance(value, dict) else type(value).__name__
            raise ConfigError(f"{where} holds {keys}: expected the keys {sorted(own)}")
        for key, item in own.items():
            check_like(value[key], item, f"{where}.{key}")
    elif isinstance(own, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping")
        for key, item in value.items():
            check_scalar(item, f"{where}.{key}")
    elif own is None:
        if value is not None:
            check_scalar(value, where)
    elif isinstance(own, (list, tuple)):
        if not isinstance(value, (list, tuple)) or len(value) != len(own):
            raise ConfigError(f"{where} must be a list of {len(own)}")
        for index, (item, own_item) in enumerate(zip(value, own, strict=True)):
            check_like(item, own_item, f"{where}[{index}]")
    elif not same_kind(value, own):
        shown = f"a {type(value).__name__}" if isinstance(value, (torch.Tensor, dict, list)) else repr(value)[:80]
        raise ConfigError(f"{where}={shown} is not allowed: expected {kind_name(own)}")


def same_kind(value: Any, own: Any) -> bool:
    """Whether a saved value is of the kind of `own` (a flag, an integer, a number, a text, a tensor)."""
    if isinstance(own, (bool, str)):
        return type(value) is type(own)
    if isinstance(own, int):
        return type(value) is int and 0 <= value < 2**63
    if isinstance(own, float):
        return is_number(value)
    if isinstance(own, torch.Tensor):
        return (isinstance(value, torch.Tensor) and value.shape == own.shape and not tensor_problem(value)
                and value.is_floating_point() == own.is_floating_point())  # fmt: skip
    return False


def kind_name(own: Any) -> str:
    if isinstance(own, torch.Tensor):
        return f"a tensor of shape {tuple(own.shape)}" + (" of floating point" if own.is_floating_point() else "")
    names = {bool: "true or false", int: "an integer >= 0", float: "a finite number", str: "a text"}
    return names.get(type(own), f"a {type(own).__name__}")


def check_scalar(value: Any, where: str) -> None:
    if not (is_number(value) or is_one_number(value)):
        raise ConfigError(f"{where} must be a number or a one-number tensor")


def is_one_number(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.numel() == 1 and not tensor_problem(value)
