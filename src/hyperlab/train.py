"""`hyperlab-train [key=value ...]`: compose the config, train, test the best checkpoint, report.

Data flows one way: config -> instantiate (data, callbacks, loggers, trainer, task) -> `Trainer.fit/test` ->
the run folder `logs/<name>/<time>/` (config.yaml, TensorBoard events, checkpoints/, figures/, metrics.json).
"""

import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from hyperlab.config import CONF_DIR, validate
from hyperlab.data import TensorDataModule
from hyperlab.errors import ConfigError, HyperlabError
from hyperlab.tasks import Task

log = logging.getLogger(__name__)

HPARAM_GROUPS = ("data", "model", "task", "optimizer", "scheduler")


@dataclass
class Experiment:
    """Everything a config builds, ready for `trainer.fit(task, datamodule=datamodule)`."""

    datamodule: TensorDataModule
    task: Task
    trainer: L.Trainer


def build(cfg: DictConfig) -> Experiment:
    """Check `cfg`, then instantiate the data, callbacks, loggers, trainer and task it describes."""
    validate(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    # Lightning sets this at import so that looking for CUDA does not initialise it (for fork-based DDP, which
    # hyperlab does not use). With it set, the `torch.cuda.is_available()` that Adam calls on every step opens
    # NVML each time: 0.1-0.2 ms, over 10% of an MNIST MLP step on a CPU.
    os.environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    datamodule = instantiate(cfg.data)
    task_class = get_class(cfg.task._target_)
    if datamodule.kind != task_class.kind:
        raise ConfigError(
            f"task={task_class.kind} does not fit this data, which is for {datamodule.kind} "
            f"(use task={datamodule.kind})"
        )
    datamodule.prepare_data()
    datamodule.setup("fit")
    callbacks = [instantiate(callback) for callback in cfg.callbacks.values()]
    loggers = [instantiate(logger) for logger in cfg.logger.values()]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    task_options = {key: value for key, value in plain(cfg.task).items() if key != "_target_"}
    task = task_class(
        **task_options,
        network={**plain(cfg.model), "input_shape": datamodule.input_shape},
        optimizer=plain(cfg.optimizer),
        scheduler=plain(cfg.scheduler),
        **task_class.data_arguments(datamodule),
    )
    return Experiment(datamodule, task, trainer)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and test the experiment `cfg` describes; returns what it also writes to `metrics.json`."""
    started = time.perf_counter()
    run_dir = Path(cfg.paths.output_dir)
    refuse_used_run_dir(run_dir)
    experiment = build(cfg)
    datamodule, task, trainer = experiment.datamodule, experiment.task, experiment.trainer
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save({k: v for k, v in cfg.items() if k != "hydra"}, run_dir / "config.yaml", resolve=True)

    trainer.fit(task, datamodule=datamodule)
    metrics = scalars(trainer.callback_metrics)
    checkpoint = trainer.checkpoint_callback
    best_path = checkpoint.best_model_path if checkpoint is not None else ""
    (test_metrics,) = trainer.test(
        task, datamodule=datamodule, ckpt_path=best_path or None, weights_only=True, verbose=False
    )
    metrics.update(scalars(test_metrics))

    result: dict[str, Any] = {
        "name": cfg.name,
        "status": "completed",
        "metrics": metrics,
        "monitor": cfg.monitor.metric,
        "best_score": round(float(checkpoint.best_model_score), 6) if best_path else None,
        "best_epoch": best_epoch(best_path),
        "best_checkpoint": best_path,
        "epochs": trainer.current_epoch,
        "wall_time_s": round(time.perf_counter() - started, 3),
        "run_dir": str(run_dir),
    }
    if hasattr(datamodule, "reference_parameters"):
        result["reference_parameters"] = datamodule.reference_parameters()
    for logger in trainer.loggers:
        logger.log_hyperparams(flat_hparams(cfg), metrics={f"hp/{k}": v for k, v in metrics.items()})
        logger.finalize("success")
    (run_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    report(result)
    return result


def plain(node: DictConfig) -> dict[str, Any]:
    """A config node as plain values (what a checkpoint's hyper-parameters must be)."""
    return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]


def scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {key: round(float(value), 6) for key, value in sorted(metrics.items())}


def best_epoch(checkpoint_path: str) -> int | None:
    """Epochs trained when the best checkpoint was saved (1 = after the first epoch)."""
    if not checkpoint_path:
        return None
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True, mmap=True)
    return int(checkpoint["epoch"]) + 1


def flat_hparams(cfg: DictConfig) -> dict[str, Any]:
    """The run's hyper-parameters for TensorBoard's HParams tab: flat keys, plain values.

    `optimizer._target_: torch.optim.SGD` becomes `optimizer: SGD`; lists become strings.
    """
    flat: dict[str, Any] = {"name": cfg.name, "seed": cfg.seed, "trainer.max_epochs": cfg.trainer.max_epochs}
    for group in HPARAM_GROUPS:
        for key, value in plain(cfg[group]).items():
            if key == "_target_":
                flat[group] = value.rsplit(".", 1)[-1]
            else:
                flat[f"{group}.{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat


def refuse_used_run_dir(run_dir: Path) -> None:
    """Never write over a previous run: its folder must not hold results already."""
    if (run_dir / "metrics.json").exists() or (run_dir / "checkpoints").exists():
        raise ConfigError(f"{run_dir} already holds a run; refusing to overwrite it")


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
            fit = f"  (least-squares fit of the training data: {reference[name]:.4f})" if name in reference else ""
            lines.append(f"  {name:<20} {value:<10.4f}{fit}")
    if result["best_checkpoint"]:
        lines.append(
            f"best checkpoint (epoch {result['best_epoch']}, {result['monitor']}={result['best_score']:.4f}): "
            f"{result['best_checkpoint']}"
        )
    lines.append(f"metrics: {Path(result['run_dir']) / 'metrics.json'}")
    lines.append(f"look at it: tensorboard --logdir {result['run_dir']}")
    log.info("\n".join(lines))


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        result = train(cfg)
    except HyperlabError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    return result["metrics"].get(cfg.monitor.metric)


if __name__ == "__main__":
    main()
