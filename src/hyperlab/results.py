"""What a run reached, gathered for its record (metrics.json), its loggers' end-of-run record and its report: the
best checkpoint's score and epoch, its hyper-parameters as flat keys, the report it logs. Read from the run's task,
trainer and checkpoint; nothing here writes a file."""

import logging
import math
from pathlib import Path
from typing import Any

from lightning import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from hyperlab.checkpoints import load_file, read_checkpoint
from hyperlab.invocation import A_SCRIPT, Invocation
from hyperlab.run_record import scalars
from hyperlab.tasks import Task
from hyperlab.tasks.base import STEP_LOSS
from hyperlab.tasks.checkpoint_state import plain_history

log = logging.getLogger(__name__)
HPARAM_GROUPS = ("data", "model", "optimizer", "scheduler")


def progress(task: Task, trainer: Trainer) -> dict[str, Any]:
    """What the fit reached however it ended: the last metrics (a resumed run's earlier ones until it logs its
    own), the epochs, the training time (earlier attempts' included) and every validation."""
    task.stop_training_clock()  # (on_train_end does not run when fit stops with an error)
    metrics = {**task.resumed_metrics, **trainer.callback_metrics}
    return {
        "metrics": scalars({key: value for key, value in metrics.items() if key != STEP_LOSS}),
        "epochs": trainer.current_epoch,
        "train_time_s": round(task.training_seconds, 3),
        "history": task.history,
    }


def best_of(checkpoint_path: str, monitor: str) -> tuple[float | None, int | None]:
    """The best checkpoint's score (the monitored metric it was saved for) and the epochs it had trained (1 = after
    the first epoch); as the file says, whichever process wrote it."""
    if not checkpoint_path:
        return None, None
    checkpoint = load_file(checkpoint_path)
    score = checkpoint.get("hyperlab", {}).get("metrics", {}).get(monitor)
    return (None if score is None else round(float(score), 6)), int(checkpoint["epoch"]) + 1


def best_in_history(history: list[dict[str, float]], monitor: str, mode: str) -> tuple[float | None, int | None]:
    """The best value of `monitor` among the run's validations (`mode`: min or max) and the epochs it had trained
    then (a validation within an epoch counts that epoch)."""
    scored = [(row[monitor], row["epoch"]) for row in history if math.isfinite(row.get(monitor, math.nan))]
    if not scored:
        return None, None
    score, epoch = (min if mode == "min" else max)(scored, key=lambda pair: pair[0])
    return round(float(score), 6), max(1, math.ceil(epoch))


def spawned_progress(checkpoint: ModelCheckpoint | None) -> dict[str, Any]:
    """ddp_spawn trains in processes of their own, which hand back the weights, the metrics and the best
    checkpoint's path alone: the epochs trained and the training time are read from the newest checkpoint."""
    folder = Path(checkpoint.dirpath) if checkpoint is not None and checkpoint.dirpath else None
    files = sorted(folder.glob("*.ckpt"), key=lambda path: path.stat().st_mtime) if folder else []
    if not files:
        return {}
    newest = read_checkpoint(files[-1])
    stored = newest["hyperlab"]
    return {"epochs": int(newest["epoch"]) + 1, "train_time_s": round(stored["training_seconds"], 3),
            "history": plain_history(stored.get("history"))}  # fmt: skip


def flat_hparams(cfg: DictConfig, task: Task, invocation: Invocation = A_SCRIPT) -> dict[str, Any]:
    """The run's hyper-parameters for TensorBoard's HParams tab (and metrics.json): flat keys, plain values.

    A config group is named by the option Hydra picked (`optimizer: sgd`, which tells apart options of one class),
    outside a Hydra command by its class (`optimizer._target_: torch.optim.SGD` becomes `optimizer: SGD`); lists
    become strings. The task is the one the run trained: its kind and its loss (`task.loss` in the config is
    regression's choice, never a classifier's). A key the command line set is there too, whatever its group
    (`trainer.gradient_clip_val=0.5`, `callbacks=none`).
    """
    choices = invocation.choices
    flat: dict[str, Any] = {"name": cfg.name, "seed": cfg.seed, "trainer.max_epochs": cfg.trainer.max_epochs}
    flat.update({"task.kind": task.kind, "task.loss": type(task.loss_fn).__name__})
    for group in HPARAM_GROUPS:
        for key, value in OmegaConf.to_container(cfg[group], resolve=True).items():  # type: ignore[union-attr]
            if key == "_target_":
                flat[group] = choices.get(group) or value.rsplit(".", 1)[-1]
            else:
                flat[f"{group}.{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    for key, text in invocation.described_by.items():
        value = choices[key] if key in choices else OmegaConf.select(cfg, key, default=text)
        flat.setdefault(key, value if isinstance(value, (int, float, str, bool)) else text)
    return flat


def record_in_logger(logger: Logger, hparams: dict[str, Any], fields: dict[str, Any], status: str, step: int) -> None:
    """The end-of-run record for a logger other than hyperlab's TensorBoard: the hyper-parameters with the final
    metrics as `hp/...` (a diverged run may have none yet: `hp/epochs` and `hp/completed` are always there, so it is
    listed, and can be filtered on). Lightning's own TensorBoardLogger gets them as its HParams record; any other
    logger through its `log_hyperparams`, and the metrics as ordinary ones at the last step."""
    final = {"hp/epochs": fields["epochs"], "hp/completed": float(status == "completed")}
    final.update({f"hp/{key}": value for key, value in fields["metrics"].items()})
    if isinstance(logger, TensorBoardLogger):
        logger.log_hyperparams(hparams, metrics=final)
    else:
        logger.log_hyperparams(hparams)
        logger.log_metrics(final, step=step)


def report(result: dict[str, Any]) -> None:
    """Log what the run reached and where to look."""
    metrics = result["metrics"]
    lines = [f"{result['name']}: trained {result['epochs']} epochs in {result['wall_time_s']:.1f} s"]
    tests = {key: value for key, value in metrics.items() if key.startswith("test/")}
    if tests:
        lines.append("test metrics (best checkpoint):")
        lines += [f"  {key:<20} {value:.4f}" for key, value in tests.items()]
    parameters = {key.removeprefix("params/"): value for key, value in metrics.items() if key.startswith("params/")}
    if parameters:
        lines.append("learned parameters (last epoch):")
        reference = result.get("reference_parameters", {})
        for name, value in parameters.items():
            fit = f"  ({result['reference_label']}: {reference[name]:.4f})" if name in reference else ""
            lines.append(f"  {name:<20} {value:<10.4f}{fit}")
    if result["best_checkpoint"]:
        lines.append(
            f"best checkpoint (epoch {result['best_epoch']}, {result['monitor']}={result['best_score']:.4f}): "
            f"{result['best_checkpoint']}"
        )
    lines.append(f"metrics: {Path(result['run_dir']) / 'metrics.json'}")
    # (the folder above the run's: TensorBoard's HParams tab reads a run's metrics by its name, which a run opened on
    # its own does not have)
    lines.append(f"look at it: tensorboard --logdir {Path(result['run_dir']).parent}")
    log.info("\n".join(lines))
