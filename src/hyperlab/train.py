"""`hyperlab-train [key=value ...]`: compose the config, train, test the best checkpoint, report.
`hyperlab-train -m ...` runs a sweep of such runs (see hyperlab.sweeps).

Data flows one way: config -> instantiate (data, callbacks, loggers, trainer, task) -> `Trainer.fit/test` ->
the run folder `logs/<name>/<time>/` (config.yaml, TensorBoard events, checkpoints/, figures/, metrics.json).
Every run ends with a metrics.json whose `status` says how it ended: completed, diverged (the loss became NaN
or infinite), failed (an error; its last line is kept) or interrupted (Ctrl-C or SIGTERM).
"""

import json
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from hyperlab.callbacks.finetuning import FreezeParameters
from hyperlab.checkpoints import check_fits, read_checkpoint
from hyperlab.config import CONF_DIR, settle_task, validate
from hyperlab.data import TensorDataModule
from hyperlab.errors import ConfigError, HyperlabError, RunFolderInUse
from hyperlab.finetune import finetuning, pretrained_network, start_from
from hyperlab.folders import register_resolvers
from hyperlab.tasks import TASKS, Diverged, Interrupted, Task

log = logging.getLogger(__name__)
register_resolvers()  # run folder names (conf/hydra/default.yaml)
RESULT_FILES = ("metrics.json", "config.yaml", "hparams.yaml", "preprocessing.json")
RESULT_FILES += ("checkpoints", "figures", "events.out.tfevents.*")

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
    datamodule = instantiate(cfg.data, _convert_="all")  # plain lists: its hyper-parameters go into checkpoints
    datamodule.prepare_data()
    datamodule.setup("fit")
    settle_task(cfg, datamodule.kind)
    task_class = TASKS[cfg.task.kind]
    network = {**plain(cfg.model), "input_shape": datamodule.input_shape}
    optimizer = plain(cfg.optimizer)
    callbacks = [instantiate(callback) for callback in cfg.callbacks.values()]
    pretrained = None
    if finetuning(cfg):
        pretrained = read_checkpoint(cfg.ckpt_path)
        network = pretrained_network(pretrained, datamodule.input_shape, cfg.ckpt_path)
        optimizer["lr"] *= cfg.finetune.lr_factor
        callbacks.append(FreezeParameters(list(cfg.finetune.freeze), cfg.finetune.unfreeze_after))
    loggers = [instantiate(logger) for logger in cfg.logger.values()]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    task_options = {"loss": cfg.task.loss} if cfg.task.kind == "regression" else {}
    task = task_class(
        **task_options,
        network=network,
        optimizer=optimizer,
        scheduler=plain(cfg.scheduler),
        **task_class.data_arguments(datamodule),
    )
    if pretrained is not None:
        start_from(task, pretrained, cfg.finetune.head, cfg.ckpt_path)
    task.run_config = plain(OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"]))
    return Experiment(datamodule, task, trainer)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and test the experiment `cfg` describes; returns what it also writes to `metrics.json`."""
    started = time.perf_counter()
    run_dir = Path(cfg.paths.output_dir)
    resume_from = checkpoint_to_resume(cfg, run_dir)
    previous = read_result(run_dir)
    if resume_from is None and (previous is not None or (run_dir / "checkpoints").exists()):
        if not cfg.resume:
            raise RunFolderInUse(f"{run_dir} already holds a run; refusing to overwrite it (resume=true re-runs it)")
        if previous is not None and previous.get("status") == "completed":
            log.info(f"{run_dir} already completed; skipped (resume=true)")
            return previous
        set_aside(run_dir)
    experiment = build(cfg)
    datamodule, task, trainer = experiment.datamodule, experiment.task, experiment.trainer
    if resume_from is not None:
        check_fits(task, read_checkpoint(resume_from)["state_dict"], resume_from)
        log.info(f"resuming from {resume_from}")
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(task.run_config, run_dir / "config.yaml")

    status, error = "completed", None
    try:
        with stop_on_ctrl_c(task):
            trainer.fit(task, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
    except (Diverged, Interrupted) as stopped:
        status, error = ("diverged" if isinstance(stopped, Diverged) else "interrupted"), str(stopped)
        task.training_seconds = time.perf_counter() - task.training_started  # on_train_end did not run
        log.warning(f"{cfg.name}: {stopped}")
    metrics = scalars(trainer.callback_metrics)
    checkpoint = trainer.checkpoint_callback
    best_path = checkpoint.best_model_path if checkpoint is not None else ""
    if status == "completed" or (status == "diverged" and best_path):  # diverged: tested on its best so far
        (test_metrics,) = trainer.test(
            task, datamodule=datamodule, ckpt_path=best_path or None, weights_only=True, verbose=False
        )
        metrics.update(scalars(test_metrics))

    result: dict[str, Any] = {
        "name": cfg.name,
        "status": status,
        "error": error,
        "metrics": metrics,
        "monitor": cfg.monitor.metric,
        "monitor_mode": cfg.monitor.mode,
        "best_score": round(float(checkpoint.best_model_score), 6) if best_path else None,
        "best_epoch": best_epoch(best_path),
        "best_checkpoint": best_path,
        "epochs": trainer.current_epoch,
        "threads": torch.get_num_threads(),
        "train_time_s": round(task.training_seconds, 3),  # the epochs alone; wall_time_s is the whole run
        "wall_time_s": round(time.perf_counter() - started, 3),
        "run_dir": str(run_dir),
    }
    if hasattr(datamodule, "reference_parameters"):
        result["reference_parameters"] = datamodule.reference_parameters()
        result["reference_label"] = datamodule.reference_label
    save_preprocessing(datamodule, run_dir)
    # the HParams tab: every run, with its final metrics (a diverged run may have none yet: epochs and
    # completed are always there, so it is listed, and the tab can filter on it)
    final = {"hp/epochs": result["epochs"], "hp/completed": float(status == "completed")}
    final.update({f"hp/{key}": value for key, value in metrics.items()})
    for logger in trainer.loggers:
        logger.log_hyperparams(flat_hparams(cfg), metrics=final)
        logger.finalize(status)
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


@contextmanager
def stop_on_ctrl_c(task: Task) -> Iterator[None]:
    """While training, Ctrl-C asks the task to stop before its next step (a KeyboardInterrupt raised in the
    middle of a step can leave a lock or a file half-done); a second Ctrl-C interrupts at once."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may handle signals
        yield
        return

    def request_stop(signum: int, frame: FrameType | None) -> None:
        task.stop_requested = True
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, request_stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def checkpoint_to_resume(cfg: DictConfig, run_dir: Path) -> str | None:
    """The checkpoint a run continues from (`ckpt_path=last` or a path), checked to exist and to be safe."""
    if cfg.ckpt_path is None or finetuning(cfg):
        return None
    path = run_dir / "checkpoints" / "last.ckpt" if cfg.ckpt_path == "last" else Path(cfg.ckpt_path)
    if not path.is_file():
        raise ConfigError(
            f"nothing to resume from: {path} does not exist (a run keeps checkpoints/last.ckpt; give its path, "
            "or ckpt_path=last with hydra.run.dir=<the run's folder>)"
        )
    read_checkpoint(path)
    return str(path)


def read_result(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def save_preprocessing(datamodule: L.LightningDataModule, run_dir: Path) -> None:
    """`preprocessing.json`: what a table's datamodule fitted on the training rows and applied (also in every
    checkpoint); nothing for data without fitted state."""
    if datamodule.state_dict():
        (run_dir / "preprocessing.json").write_text(json.dumps(datamodule.state_dict(), indent=2) + "\n")


def set_aside(run_dir: Path) -> Path:
    """Move an unfinished or failed attempt's results into `<run>/attempts/<n>/` before running it again."""
    attempts = run_dir / "attempts"
    target = attempts / str(len(list(attempts.glob("*"))) + 1 if attempts.is_dir() else 1)
    target.mkdir(parents=True)
    for pattern in RESULT_FILES:
        for path in run_dir.glob(pattern):
            path.rename(target / path.name)
    log.info(f"the earlier attempt's results are kept in {target}")
    return target


def record_outcome(cfg: DictConfig, status: str, error: str) -> None:
    """Write a metrics.json for a run that ended without one (failed or interrupted) - never over a result."""
    run_dir = Path(cfg.paths.output_dir)
    if read_result(run_dir) is not None:
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "name": cfg.name,
        "status": status,
        "error": error,
        "metrics": {},
        "monitor": cfg.monitor.metric,
        "monitor_mode": cfg.monitor.mode,
        "run_dir": str(run_dir),
    }
    (run_dir / "metrics.json").write_text(json.dumps(record, indent=2) + "\n")


def launcher_threads(hydra_config: DictConfig) -> int | None:
    """CPU threads per job when a launcher runs several jobs at once, so that they don't fight over cores."""
    launcher = hydra_config.launcher
    if launcher.get("cpus_per_task"):
        return int(launcher.cpus_per_task)
    jobs = launcher.get("n_jobs")
    if jobs:
        cores = os.cpu_count() or 1
        return max(1, cores // (cores if jobs < 0 else jobs))
    return None


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
    lines.append(f"look at it: tensorboard --logdir {result['run_dir']}")
    log.info("\n".join(lines))


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float:
    """hyperlab-train: `ckpt_path` resumes the run the checkpoint belongs to."""
    return run(cfg)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="finetune")
def finetune_main(cfg: DictConfig) -> float:
    """hyperlab-finetune: a new run that starts from the weights of the checkpoint at `ckpt_path`."""
    return run(cfg)


def run(cfg: DictConfig) -> float:
    """Run `train(cfg)` and record how it ended. In a sweep a failed run is recorded and the sweep goes on;
    returns the best value of the monitored metric (what an Optuna sweep optimises; NaN when there is none)."""
    hydra_config = HydraConfig.get()
    sweeping = hydra_config.mode == RunMode.MULTIRUN
    if cfg.threads is None:
        cfg.threads = launcher_threads(hydra_config)
    try:
        result = train(cfg)
    except RunFolderInUse as error:
        print(f"error: {error}", file=sys.stderr)
        if sweeping:
            return math.nan
        sys.exit(2)
    except HyperlabError as error:
        record_outcome(cfg, "failed", str(error))
        print(f"error: {error}", file=sys.stderr)
        if sweeping:
            return math.nan
        sys.exit(2)
    except (KeyboardInterrupt, SystemExit) as stop:  # Lightning turns Ctrl-C and SIGTERM into SystemExit
        record_outcome(cfg, "interrupted", "stopped by Ctrl-C or SIGTERM")
        raise SystemExit(getattr(stop, "code", None) or 1) from None  # never status 0: the run did not finish
    except Exception as error:
        log.exception(f"{cfg.name} failed")
        last_line = (str(error).strip().splitlines() or [""])[-1]
        record_outcome(cfg, "failed", f"{type(error).__name__}: {last_line}")
        if sweeping:
            return math.nan
        raise
    if result["status"] == "interrupted":
        raise SystemExit(130)  # the conventional status after Ctrl-C; a sweep stops here too
    return math.nan if result.get("best_score") is None else result["best_score"]


if __name__ == "__main__":
    main()
