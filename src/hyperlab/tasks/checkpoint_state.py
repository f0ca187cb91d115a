"""What a task keeps in its checkpoints besides the weights, and reads back from one it resumes from, as data:
numbers only, and checkpoint paths only where they are this run's own."""

import math
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor

from hyperlab.loggers.tensorboard import epoch_end_step

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
    return [plain_numbers(row) for row in rows if isinstance(row, dict)]


def plain_numbers(values: Any) -> dict[str, float]:
    """A checkpoint's metrics, numbers only, by name."""
    items = values.items() if isinstance(values, dict) else []
    return {key: float(value) for key, value in items if isinstance(key, str) and isinstance(value, (int, float))}


def plain_seconds(value: Any) -> float:
    """A checkpoint's training time so far (0 unless a number of seconds)."""
    return float(value) if isinstance(value, (int, float)) and value >= 0 else 0.0


def plain_loss(value: Any) -> float | None:
    """A checkpoint's starting loss (None unless a finite number)."""
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def history_row(trainer: L.Trainer, values: dict[str, Tensor]) -> dict[str, float]:
    """A validation of the fit as a row of `Task.history`: its values, at its place in epochs (1.0 = the end of the
    first epoch) and at the step its metrics are logged at."""
    batches = trainer.num_training_batches
    done = trainer.fit_loop.epoch_loop.batch_progress.current.ready
    epoch = trainer.current_epoch + (min(done / batches, 1.0) if batches and batches != float("inf") else 1.0)
    numbers = torch.stack([value.detach().float() for value in values.values()]).tolist()  # one device sync
    row = {"epoch": round(epoch, 4), "step": epoch_end_step(trainer)}
    return row | {key: round(number, 6) for key, number in zip(values, numbers, strict=True)}


def saved_state(task: Any) -> dict[str, Any]:
    """A task's `hyperlab` entry of a checkpoint: which task, the config of the run that writes the file, the
    metrics so far, the training time (this attempt's so far too), the starting loss and the history."""
    training = task.training_seconds
    if task.training_started:
        training += time.perf_counter() - task.training_started
    return {
        "task": task.kind,  # (its kind names its class in hyperlab.tasks.TASKS: no class path in the file)
        "config": task.run_config,
        "metrics": {key: float(value) for key, value in task.trainer.callback_metrics.items()},
        "training_seconds": training,
        "first_loss": None if task.first_loss is None else float(task.first_loss),
        "history": task.history,
    }


def restore_state(task: Any, checkpoint: dict[str, Any], trainer: L.Trainer | None) -> None:
    """What a resumed task keeps of a checkpoint's `hyperlab` entry (numbers only; never its config), and the
    checkpoint's ModelCheckpoint states that name this run's own files alone (`keep_own_checkpoint_paths`)."""
    if trainer is not None:
        keep_own_checkpoint_paths(checkpoint, trainer)
    stored = checkpoint.get("hyperlab", {})
    stored = stored if isinstance(stored, dict) else {}
    task.resumed_metrics = plain_numbers(stored.get("metrics", {}))
    task.training_seconds = plain_seconds(stored.get("training_seconds", 0.0))
    task.first_loss = plain_loss(stored.get("first_loss"))
    task.history = plain_history(stored.get("history"))
