"""`hyperlab-train [key=value ...]`: compose the config, train, test the best checkpoint, report.
`hyperlab-train -m ...` runs a sweep of such runs (see hyperlab.sweeps).

Data flows one way: config -> instantiate (data, callbacks, loggers, trainer, task) -> `Trainer.fit/test` ->
the run folder `logs/<name>/<time>/` (config.yaml, TensorBoard events, checkpoints/, figures/, metrics.json).
Every run ends with a metrics.json whose `status` says how it ended: completed, diverged (the loss became NaN
or infinite, or exploded: see `Task.check_explosion`), failed (an error; its last line is kept) or interrupted
(Ctrl-C or SIGTERM, in any phase; the process exits with status 130).
"""

import json
import logging
import math
import os
import signal
import sys
import threading
import time
import warnings
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
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.strategies.launchers import _MultiProcessingLauncher, _SubprocessScriptLauncher
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from hyperlab.callbacks.finetuning import FreezeParameters
from hyperlab.checkpoints import check_fits, read_checkpoint
from hyperlab.classes import CONF_DIR
from hyperlab.config import check_trainer_overrides, settle_task, validate
from hyperlab.data import TensorDataModule
from hyperlab.errors import ConfigError, HyperlabError, RunFolderInUse
from hyperlab.finetune import finetuning, pretrained_network, start_from
from hyperlab.folders import LOCK_FILE, lock_folder, register_resolvers
from hyperlab.tasks import TASKS, Diverged, Interrupted, Task
from hyperlab.tasks.base import STEP_LOSS, StopRequest
from hyperlab.tasks.loop import choose_loop

log = logging.getLogger(__name__)
register_resolvers()  # run folder names (conf/hydra/default.yaml)
RESULT_FILES = ("metrics.json", "config.yaml", "hparams.yaml", "preprocessing.json")
RESULT_FILES += ("checkpoints", "figures", "events.out.tfevents.*")

HPARAM_GROUPS = ("data", "model", "optimizer", "scheduler")


@dataclass
class Experiment:
    """Everything a config builds, ready for `trainer.fit(task, datamodule=datamodule)`."""

    datamodule: TensorDataModule
    task: Task
    trainer: L.Trainer
    loop: str  # which training loop it runs, and why (see tasks.loop)


def build(cfg: DictConfig, pretrained: dict[str, Any] | None = None) -> Experiment:
    """Instantiate the data, callbacks, loggers, trainer and task that `cfg` (checked by `validate`) describes; a
    fine-tune starts from `pretrained`, the checkpoint at `cfg.ckpt_path` as `read_checkpoint` checked it."""
    if finetuning(cfg) and pretrained is None:
        raise ValueError("a fine-tune is built from its checked pretrained checkpoint (see train)")
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
    if pretrained is not None:
        network = pretrained_network(pretrained, datamodule.input_shape, cfg.ckpt_path)
        optimizer["lr"] *= cfg.finetune.lr_factor
        callbacks.append(FreezeParameters(list(cfg.finetune.freeze), cfg.finetune.unfreeze_after))
    loggers = [build_logger(name, logger) for name, logger in cfg.logger.items()]
    try:
        trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    except InstantiationException as error:  # Lightning refuses the combination (e.g. a GPU on a machine without)
        raise ConfigError(f"trainer: Lightning refuses these settings: {last_line(error.__cause__ or error)}") from None
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
    return Experiment(datamodule, task, trainer, choose_loop(task, trainer, datamodule))


def build_logger(name: str, options: DictConfig) -> Logger:
    try:
        return instantiate(options)
    except InstantiationException as error:  # e.g. a logger whose package is not installed
        cause = error.__cause__ or error
        hint = f' (hyperlab\'s extra: pip install -e ".[{name}]")' if isinstance(cause, ImportError) else ""
        raise ConfigError(f"logger.{name}: {last_line(cause)}{hint}") from None


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and test the experiment `cfg` describes; returns what it also writes to `metrics.json`.

    Everything is checked before anything is written: the config, then the checkpoint a resume starts from. Then
    the run folder is locked (a second process on it is refused), and from there every way the run ends leaves a
    metrics.json saying how: completed, diverged, failed or interrupted."""
    started = time.perf_counter()
    validate(cfg)
    run_dir = Path(cfg.paths.output_dir)
    resume = checkpoint_to_resume(cfg, run_dir)  # (path, checked checkpoint): each file is read once
    resume_from = resume[0] if resume else None
    pretrained = read_checkpoint(cfg.ckpt_path) if finetuning(cfg) else None  # checked before the folder is made
    if rank_zero_only.rank != 0:  # a process DDP started for this run (RANK / LOCAL_RANK set): rank 0 records it
        return run_experiment(cfg, run_dir, resume, pretrained, RunRecord(cfg, run_dir, started), StopRequest())
    with locked_run_folder(run_dir):
        previous = read_result(run_dir)
        if previous is not None and previous.get("status") == "completed" and (cfg.resume or resume_from):
            epochs = previous.get("epochs") or 0
            if resume_from is None or cfg.trainer.max_epochs <= epochs:
                log.info(f"{run_dir} already completed its {epochs} epochs: nothing to do (results: metrics.json)")
                return previous
        if resume_from is None and (previous is not None or (run_dir / "checkpoints").exists()):
            if not cfg.resume:
                raise RunFolderInUse(
                    f"{run_dir} already holds a run; refusing to overwrite it (resume=true re-runs it)"
                )
            set_aside(run_dir, RESULT_FILES)
        elif previous is not None:
            set_aside(run_dir, ("metrics.json",))  # a resume continues the run; the earlier attempt's record is kept
        record = RunRecord(cfg, run_dir, started)
        stop = StopRequest()
        with stop_on_signals(stop):
            try:
                return run_experiment(cfg, run_dir, resume, pretrained, record, stop)
            except (Interrupted, KeyboardInterrupt, SystemExit) as stopped:  # Lightning's SIGTERMException too
                stop.defer = True  # a further signal must not cut the record short
                reason = str(stopped) if isinstance(stopped, Interrupted) else f"stopped by {stop.signal or 'a signal'}"
                record.write("interrupted", reason)
                raise Interrupted(reason) from None
            except Exception as error:
                stop.defer = True
                reason = (
                    str(error) if isinstance(error, HyperlabError) else f"{type(error).__name__}: {last_line(error)}"
                )
                record.write("failed", reason)
                raise


def run_experiment(
    cfg: DictConfig,
    run_dir: Path,
    resume: tuple[str, dict[str, Any]] | None,
    pretrained: dict[str, Any] | None,
    record: "RunRecord",
    stop: StopRequest,
) -> dict[str, Any]:
    """Build, fit, test and record the run (its folder is locked and its signals handled by `train`)."""
    experiment = build(cfg, pretrained)
    datamodule, task, trainer = experiment.datamodule, experiment.task, experiment.trainer
    if isinstance(trainer.strategy.launcher, _SubprocessScriptLauncher) and sweeping():
        raise ConfigError(
            f"trainer.strategy: {type(trainer.strategy).__name__} starts its other processes by re-running the "
            "command line, which in a sweep (-m) would re-run the whole sweep: use trainer.strategy=ddp_spawn"
        )
    task.stop = stop
    log.info(f"training loop: {experiment.loop}")
    record.fields.update(loop=experiment.loop, threads=torch.get_num_threads())
    resume_from = resume[0] if resume else None
    if resume is not None:
        check_fits(task, resume[1]["state_dict"], resume_from)
        log.info(f"resuming from {resume_from}")
    writes = trainer.is_global_zero  # with several processes, rank 0 alone writes the run's files
    if writes:
        write_atomically(run_dir / "config.yaml", OmegaConf.to_yaml(task.run_config))

    status, error = "completed", None
    try:
        stop.defer = True  # while training, a signal stops the run before its next step (see StopRequest)
        with warnings.catch_warnings():
            if not task.automatic_optimization:  # (Lightning would call the fast loop's chunks training batches)
                warnings.filterwarnings("ignore", message="The number of training batches .* logging interval")
            trainer.fit(task, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
        stop.defer = False
        stop.check(trainer.global_step)  # a signal during the last validation or checkpoint
    except MisconfigurationException as refused:  # a combination Lightning refuses once it sees the data
        raise ConfigError(f"trainer: Lightning refuses these settings: {last_line(refused)}") from None
    except Diverged as diverged:
        status, error = "diverged", str(diverged)
        log.warning(f"{cfg.name}: {diverged}")
    finally:
        stop.defer = False
        task.stop_training_clock()  # on_train_end does not run when fit stops with an error
        metrics = {**task.resumed_metrics, **trainer.callback_metrics}
        record.fields["metrics"] = scalars({key: value for key, value in metrics.items() if key != STEP_LOSS})
        record.fields["epochs"] = trainer.current_epoch
        record.fields["train_time_s"] = round(task.training_seconds, 3)  # earlier attempts' included
    checkpoint = trainer.checkpoint_callback
    best_path = checkpoint.best_model_path if checkpoint is not None else ""
    if best_path and resume_from is not None:  # restored from the file (in this run's folder: see Task): checked
        read_checkpoint(best_path)
    if isinstance(trainer.strategy.launcher, _MultiProcessingLauncher):
        record.fields.update(spawned_progress(checkpoint))
    best_score, epoch = best_of(best_path, cfg.monitor.metric)
    record.fields.update(best_score=best_score, best_epoch=epoch, best_checkpoint=best_path)
    if status == "completed" or (status == "diverged" and best_path):  # diverged: tested on its best so far
        (test_metrics,) = trainer.test(
            task, datamodule=datamodule, ckpt_path=best_path or None, weights_only=True, verbose=False
        )
        record.fields["metrics"].update(scalars(test_metrics))
    if hasattr(datamodule, "reference_parameters"):
        record.fields["reference_parameters"] = datamodule.reference_parameters()
        record.fields["reference_label"] = datamodule.reference_label
    if not writes:
        return record.fields
    save_preprocessing(datamodule, run_dir)
    # the end-of-run record: the hyper-parameters with the final metrics (a diverged run may have none yet:
    # epochs and completed are always there, so it is listed, and can be filtered on)
    final = {"hp/epochs": record.fields["epochs"], "hp/completed": float(status == "completed")}
    final.update({f"hp/{key}": value for key, value in record.fields["metrics"].items()})
    for logger in trainer.loggers:
        record_in_logger(logger, flat_hparams(cfg, task), final, trainer.global_step)
        logger.finalize("success" if status == "completed" else "failed")  # (the statuses loggers know)
    result = record.write(status, error)
    report(result)
    return result


class RunRecord:
    """A run's metrics.json: filled in as the run goes, written once when it ends, however it ends."""

    def __init__(self, cfg: DictConfig, run_dir: Path, started: float) -> None:
        self.path = run_dir / "metrics.json"
        self.cfg = cfg
        self.started = started
        self.written = False
        self.fields: dict[str, Any] = {
            "name": cfg.name,
            "metrics": {},
            "best_score": None,
            "best_epoch": None,
            "best_checkpoint": "",
            "epochs": 0,
            "threads": torch.get_num_threads(),
            "train_time_s": 0.0,  # the epochs alone; wall_time_s is the whole run
            "run_dir": str(run_dir),
        }

    def write(self, status: str, error: str | None) -> dict[str, Any]:
        """Write metrics.json (atomically: a kill leaves the old file or the new one); once per attempt."""
        result = {"name": self.fields["name"], "status": status, "error": error, **self.fields}
        # (monitor.* = auto is settled once the data is loaded)
        result.update(monitor=self.cfg.monitor.metric, monitor_mode=self.cfg.monitor.mode)
        result["wall_time_s"] = round(time.perf_counter() - self.started, 3)
        if not self.written:
            write_atomically(self.path, json.dumps(result, indent=2) + "\n")
            self.written = True
        return result


def record_in_logger(logger: Logger, hparams: dict[str, Any], final: dict[str, float], step: int) -> None:
    """TensorBoard gets its HParams record (the hyper-parameters with the final metrics); any other Lightning
    logger gets the hyper-parameters through its own `log_hyperparams` and the final metrics as ordinary metrics."""
    if isinstance(logger, TensorBoardLogger):
        logger.log_hyperparams(hparams, metrics=final)
    else:
        logger.log_hyperparams(hparams)
        logger.log_metrics(final, step=step)


def plain(node: DictConfig) -> dict[str, Any]:
    """A config node as plain values (what a checkpoint's hyper-parameters must be)."""
    return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]


def scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {key: round(float(value), 6) for key, value in sorted(metrics.items())}


def best_of(checkpoint_path: str, monitor: str) -> tuple[float | None, int | None]:
    """The best checkpoint's score (the monitored metric it was saved for) and the epochs it had trained (1 = after
    the first epoch); as the file says, whichever process wrote it."""
    if not checkpoint_path:
        return None, None
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True, mmap=True)
    score = checkpoint.get("hyperlab", {}).get("metrics", {}).get(monitor)
    return (None if score is None else round(float(score), 6)), int(checkpoint["epoch"]) + 1


def spawned_progress(checkpoint: ModelCheckpoint | None) -> dict[str, Any]:
    """ddp_spawn trains in processes of their own, which hand back the weights, the metrics and the best
    checkpoint's path alone: the epochs trained and the training time are read from the newest checkpoint."""
    folder = Path(checkpoint.dirpath) if checkpoint is not None and checkpoint.dirpath else None
    files = sorted(folder.glob("*.ckpt"), key=lambda path: path.stat().st_mtime) if folder else []
    if not files:
        return {}
    newest = read_checkpoint(files[-1])
    return {"epochs": int(newest["epoch"]) + 1, "train_time_s": round(newest["hyperlab"]["training_seconds"], 3)}


def flat_hparams(cfg: DictConfig, task: Task) -> dict[str, Any]:
    """The run's hyper-parameters for TensorBoard's HParams tab: flat keys, plain values.

    `optimizer._target_: torch.optim.SGD` becomes `optimizer: SGD`; lists become strings. The task is the one the
    run trained: its kind and its loss (`task.loss` in the config is regression's choice, never a classifier's).
    """
    flat: dict[str, Any] = {"name": cfg.name, "seed": cfg.seed, "trainer.max_epochs": cfg.trainer.max_epochs}
    flat.update({"task.kind": task.kind, "task.loss": type(task.loss_fn).__name__})
    for group in HPARAM_GROUPS:
        for key, value in plain(cfg[group]).items():
            if key == "_target_":
                flat[group] = value.rsplit(".", 1)[-1]
            else:
                flat[f"{group}.{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat


@contextmanager
def stop_on_signals(stop: StopRequest) -> Iterator[None]:
    """Ctrl-C (SIGINT) and SIGTERM stop the run in every phase: setup, fit, test, figures, writing results. While
    training (`stop.defer`), the run stops before its next step (a stop in the middle of a step can leave a lock
    or a file half-done); in the other phases, at once. A second signal stops at once."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may handle signals
        yield
        return

    def request_stop(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop.defer and stop.signal is None:
            stop.signal = name
            return
        stop.signal = name
        raise Interrupted(f"stopped by {name}")

    previous = {signum: signal.signal(signum, request_stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def locked_run_folder(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the run folder while the run writes into it: a second process given the same
    folder is refused at once."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = lock_folder(run_dir)
    except OSError as error:
        raise ConfigError(f"cannot write the run folder {run_dir}: {error.strerror} (see paths.log_dir)") from None
    if lock is None:
        raise RunFolderInUse(f"{run_dir} is in use by another run (it holds {LOCK_FILE}'s lock)")
    with lock:
        yield


def checkpoint_to_resume(cfg: DictConfig, run_dir: Path) -> tuple[str, dict[str, Any]] | None:
    """The checkpoint a run continues from (`ckpt_path=last` or a path) and its contents, checked to exist, to be
    safe, to belong to the run folder and to have trained no more epochs than asked for."""
    if cfg.ckpt_path is None or finetuning(cfg):
        return None
    path = run_dir / "checkpoints" / "last.ckpt" if cfg.ckpt_path == "last" else Path(cfg.ckpt_path)
    if not path.is_file():
        raise ConfigError(
            f"nothing to resume from: {path} does not exist (a run keeps checkpoints/last.ckpt; give its path, "
            "or ckpt_path=last with hydra.run.dir=<the run's folder>)"
        )
    if path.resolve().parent != (run_dir / "checkpoints").resolve() and not run_folder_named(cfg):
        raise ConfigError(
            f"ckpt_path={path} is not in a run's checkpoints/ folder: a resume continues the run the file belongs "
            "to (<run>/checkpoints/<file>); to continue it in another folder, name it: hydra.run.dir=<folder>"
        )
    checkpoint = read_checkpoint(path)
    epochs = int(checkpoint["epoch"]) + 1  # hyperlab's checkpoints are written at the end of an epoch
    if cfg.trainer.max_epochs < epochs:
        raise ConfigError(
            f"trainer.max_epochs={cfg.trainer.max_epochs} is below the {epochs} epochs {path} has already "
            f"trained: give trainer.max_epochs >= {epochs}"
        )
    return str(path), checkpoint


def run_folder_named(cfg: DictConfig) -> bool:
    """Whether the user chose the run folder (hydra.run.dir=... on the command line, or a config composed with
    paths.output_dir set, as scripts and tests do) rather than getting a new one."""
    if not HydraConfig.initialized():
        return True
    return any(o.split("=", 1)[0] == "hydra.run.dir" for o in HydraConfig.get().overrides.hydra)


def read_result(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def save_preprocessing(datamodule: L.LightningDataModule, run_dir: Path) -> None:
    """`preprocessing.json`: what a table's datamodule fitted on the training rows and applied (also in every
    checkpoint); nothing for data without fitted state."""
    if datamodule.state_dict():
        (run_dir / "preprocessing.json").write_text(json.dumps(datamodule.state_dict(), indent=2) + "\n")


def set_aside(run_dir: Path, patterns: tuple[str, ...]) -> Path:
    """Move an earlier attempt's results (the files matching `patterns`) into `<run>/attempts/<n>/`."""
    attempts = run_dir / "attempts"
    target = attempts / str(len(list(attempts.glob("*"))) + 1 if attempts.is_dir() else 1)
    target.mkdir(parents=True)
    for pattern in patterns:
        for path in run_dir.glob(pattern):
            path.rename(target / path.name)
    log.info(f"the earlier attempt's results are kept in {target}")
    return target


def last_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [""])[-1]


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it: readers see the old file or the new one."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


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


def main() -> None:
    """hyperlab-train: `ckpt_path` resumes the run the checkpoint belongs to."""
    check_command_line()
    hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")(run)()


def finetune_main() -> None:
    """hyperlab-finetune: a new run that starts from the weights of the checkpoint at `ckpt_path`."""
    check_command_line()
    hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="finetune")(run)()


def check_command_line() -> None:
    """What hyperlab refuses before Hydra composes (Hydra's messages for these are tracebacks or name nothing)."""
    try:
        check_trainer_overrides(sys.argv[1:])
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def run(cfg: DictConfig) -> float:
    """Run `train(cfg)` and turn how it ended into the process's exit status: a user's mistake is one line and
    status 2, an interrupted run status 130 (SIGINT or SIGTERM alike), which stops a sweep too. In a sweep a failed
    run is recorded and the sweep goes on; returns the best value of the monitored metric (what an Optuna sweep
    optimises; NaN when there is none)."""
    hydra_config = HydraConfig.get()
    if cfg.threads is None:
        cfg.threads = launcher_threads(hydra_config)
    try:
        result = train(cfg)
    except Interrupted as stopped:
        print(f"interrupted: {stopped}", file=sys.stderr)
        raise SystemExit(130) from None
    except HyperlabError as error:
        print(f"error: {error}", file=sys.stderr)
        if not sweeping():
            sys.exit(2)
        if not isinstance(error, RunFolderInUse):
            record_refusal(cfg, str(error))
        return math.nan
    except Exception:
        log.exception(f"{cfg.name} failed")  # recorded as failed by train, with its error's last line
        if sweeping():
            return math.nan
        raise
    return math.nan if result.get("best_score") is None else result["best_score"]


def sweeping() -> bool:
    """Whether this run is one of a sweep's (hyperlab-train -m)."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def record_refusal(cfg: DictConfig, error: str) -> None:
    """A sweep's run refused before it started: a `failed` metrics.json, so the sweep's table says why (never over
    an earlier attempt's record)."""
    path = Path(cfg.paths.output_dir) / "metrics.json"
    if path.parent.is_dir() and not path.exists():
        record = {"name": cfg.name, "status": "failed", "error": error, "metrics": {}, "monitor": cfg.monitor.metric,
                  "monitor_mode": cfg.monitor.mode, "run_dir": str(path.parent)}  # fmt: skip
        write_atomically(path, json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
