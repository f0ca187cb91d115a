"""Reading checkpoints safely, and rebuilding a trained task from one.

Every load uses `torch.load(..., weights_only=True)`: tensors, numbers, strings and containers only, so a file
carrying a pickled object that would run code is refused before anything runs. A checkpoint written by
hyperlab also carries `hyperlab.task` (the task's class) and `hyperlab.config` (the run's resolved config, plain
values), so evaluation and fine-tuning need nothing but the file.
"""

import pickle
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_class
from torch import nn

from hyperlab.errors import ConfigError, DataError
from hyperlab.tasks import Task


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint at `path` as plain data, or a DataError that names the file and says what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no checkpoint file at {path}")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty: not a checkpoint")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        detail = str(error).split("Unsupported global:")[-1].split(".")[0].strip() if "global" in str(error) else ""
        raise DataError(
            f"{path} holds pickled Python objects{f' ({detail})' if detail else ''} that could run code when "
            "loaded: refused, nothing in it was run"
        ) from None
    except Exception as error:  # noqa: BLE001 - truncated, corrupt or foreign files fail in many ways
        reason = repr(error)[:200]
        raise DataError(f"{path} is not a readable checkpoint (truncated, or not a PyTorch file): {reason}") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise DataError(f"{path} is a PyTorch file but not a Lightning checkpoint (it has no state_dict)")
    if "_instantiator" in checkpoint.get("hyper_parameters", {}):
        raise DataError(f"{path} asks to be built by an instantiator of its own: refused (hyperlab never writes one)")
    return checkpoint


def is_task(cls: type) -> bool:
    return isinstance(cls, type) and issubclass(cls, Task)


def task_class(checkpoint: dict[str, Any], path: str | Path) -> type[Task]:
    """The task class a hyperlab checkpoint names (only subclasses of hyperlab's Task are accepted)."""
    name = checkpoint.get("hyperlab", {}).get("task")
    try:
        cls = get_class(name) if isinstance(name, str) else None
    except (ImportError, AttributeError, ValueError):
        cls = None
    if cls is None or not is_task(cls):
        raise DataError(f"{path} was not written by hyperlab-train (it names no hyperlab task: {name!r})")
    return cls


def load_task(path: str | Path) -> Task:
    """Rebuild the trained task of the checkpoint at `path` from its plain hyper-parameters and its weights."""
    return task_from(read_checkpoint(path), path)


def task_from(checkpoint: dict[str, Any], path: str | Path) -> Task:
    """The trained task of a checkpoint already read (by `read_checkpoint`)."""
    cls = task_class(checkpoint, path)
    try:
        task = cls(**checkpoint["hyper_parameters"])
    except (TypeError, ValueError) as error:
        raise DataError(f"{path}: its hyper-parameters do not build a {cls.__name__}: {error}") from None
    load_weights(task, checkpoint["state_dict"], str(path))
    task.on_load_checkpoint(checkpoint)
    return task.eval()


def data_state(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """What the run's datamodule fitted and kept (a table's preprocessing), {} if nothing. Lightning files it under
    the datamodule's class name, which the run config's `data._target_` ends with."""
    target = str(checkpoint.get("hyperlab", {}).get("config", {}).get("data", {}).get("_target_", ""))
    state = checkpoint.get(target.rsplit(".", 1)[-1], {})
    return state if isinstance(state, dict) else {}


def load_weights(
    module: nn.Module, state_dict: dict[str, torch.Tensor], source: str, skip: tuple[str, ...] = ()
) -> None:
    """Copy `state_dict` into `module` (but the parameters whose names start with one of `skip`: a new head)."""
    check_fits(module, state_dict, source, skip)
    module.load_state_dict({k: v for k, v in state_dict.items() if not k.startswith(skip)}, strict=not skip)


def check_fits(module: nn.Module, state_dict: dict[str, torch.Tensor], source: str, skip: tuple[str, ...] = ()) -> None:
    """Raise a ConfigError that says which parameters don't fit: names, and shapes where both have one."""
    own = {k: v for k, v in module.state_dict().items() if not k.startswith(skip)}
    theirs = {k: v for k, v in state_dict.items() if not k.startswith(skip)}
    missing = sorted(own.keys() - theirs.keys())
    unexpected = sorted(theirs.keys() - own.keys())
    wrong_shape = [
        f"{k}: checkpoint {tuple(theirs[k].shape)}, model {tuple(own[k].shape)}"
        for k in sorted(own.keys() & theirs.keys())
        if own[k].shape != theirs[k].shape
    ]
    if missing or unexpected or wrong_shape:
        problems = [f"shapes differ for {', '.join(wrong_shape)}"] if wrong_shape else []
        problems += [f"not in the checkpoint: {', '.join(missing)}"] if missing else []
        problems += [f"not in the model: {', '.join(unexpected)}"] if unexpected else []
        raise ConfigError(f"the checkpoint {source} does not fit this model: " + "; ".join(problems))
