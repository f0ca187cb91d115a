"""`train(cfg)`: one run, from its composed config to its results (the entry points are in hyperlab.cli).

Data flows one way: check (`validate`, the checkpoint it starts from: `start.how_it_starts`) -> build (the data
settles the config's `auto` values, then the task, callbacks, loggers and trainer: `experiment.build`) -> the run
folder is locked (`folder_locks`) and an earlier attempt set aside (`run_folder`) -> `Trainer.fit`, then
`Trainer.test` on the best checkpoint -> record (metrics.json, config.yaml, the loggers' end-of-run record); with
tune=lr_find, Lightning's learning-rate finder instead of fit and test (hyperlab.tuning). Nothing is written before
the config, the checkpoint and the data have all been accepted. Every run that reaches its folder ends with a
metrics.json whose `status` says how it ended: completed, diverged (the loss became NaN or infinite, or exploded:
see `Task.check_explosion`), failed (an error; its last line is kept) or interrupted (Ctrl-C or SIGTERM, in any
phase; the process exits with status 130). On a full disk: in brief, or, when not even that fits, one line saying so
(with a resumed run's earlier record put back: `run_record.RunRecord`).
"""

if __name__ == "__main__":  # python -m hyperlab.train is hyperlab-train, which checks its command line before
    import sys  # this module's imports load torch (a refusal in a moment, not after seconds of imports)

    from hyperlab.cli import train_main

    sys.exit(train_main())

import logging
import math
import signal
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from hyperlab.callbacks import pruned_reason
from hyperlab.checkpoints import load_file, read_checkpoint
from hyperlab.compat import is_script_launcher, is_spawn_launcher
from hyperlab.config import validate
from hyperlab.errors import ConfigError, HyperlabError, NoRoomLeft, last_line
from hyperlab.experiment import Experiment, build, plain
from hyperlab.folder_locks import locked, refuse_in_use, refuse_overwrite
from hyperlab.json_files import NO_ROOM, reason_of
from hyperlab.loggers import TensorBoardLogger as HyperlabTensorBoardLogger
from hyperlab.loggers import end_run
from hyperlab.replicates import run_seed
from hyperlab.run_folder import make_room
from hyperlab.run_record import RunRecord, read_result, record_unstarted, scalars, write_config, write_preprocessing
from hyperlab.start import Start, check_resume, how_it_starts
from hyperlab.sweeps.table import write_experiment_record
from hyperlab.tasks import Diverged, Interrupted, Task
from hyperlab.tasks.base import STEP_LOSS, StopRequest, plain_history
from hyperlab.tasks.chance import chance_note
from hyperlab.tuning import find_learning_rate

log = logging.getLogger(__name__)
HPARAM_GROUPS = ("data", "model", "optimizer", "scheduler")


def train(cfg: DictConfig, threads: int | None = None) -> dict[str, Any]:
    """Train and test the experiment `cfg` describes; returns what it also writes to `metrics.json`. `threads`: the
    CPU threads a run takes when cfg.threads is null (a launcher running several runs at once gives each a share)."""
    started = time.perf_counter()
    validate(cfg)
    cfg.seed = run_seed(cfg.seed, cfg.repeat)  # what repeat `repeat` trains with (the data's shuffle_seed follows it)
    run_dir = Path(cfg.paths.output_dir)
    start = how_it_starts(cfg, run_dir)  # its checkpoint read and checked once
    previous = read_result(run_dir)
    if done_already(cfg, start, previous):
        log.info(f"{run_dir} already completed its {previous['epochs']} epochs: nothing to do (results: metrics.json)")
        return previous  # type: ignore[return-value]
    records = rank_zero_only.rank == 0  # with several processes (DDP), rank 0 alone touches the folder
    if records:
        refuse_overwrite(run_dir, resumes=start.resumes, rerun=cfg.resume)  # before the data is loaded
        refuse_in_use(run_dir)
    stop = StopRequest()
    with stop_on_signals(stop) if records else nullcontext():  # (DDP's other processes: rank 0 is signalled)
        experiment = build_or_record(cfg, start, threads, stop, records)
        if not records:
            return run_and_record(experiment, run_dir, start, new_record(experiment, run_dir, started), stop)
        with locked(run_dir):
            earlier = make_room(run_dir, resumes=start.resumes, rerun=cfg.resume)
            record = new_record(experiment, run_dir, started)
            record.earlier = earlier  # (put back if this attempt's record cannot be written)
            try:
                return run_and_record(experiment, run_dir, start, record, stop)
            except (Interrupted, KeyboardInterrupt, SystemExit) as stopped:  # Lightning's SIGTERMException too
                stop.defer = True  # a further signal must not cut the record short
                record.write("interrupted", stop_reason(stopped, stop))
                raise Interrupted(stop_reason(stopped, stop)) from None
            except Exception as error:
                stop.defer = True
                record.write("failed", str(error) if isinstance(error, HyperlabError) else error_line(error))
                if isinstance(error, OSError) and error.errno in NO_ROOM:  # (a full disk is no bug: one line)
                    raise NoRoomLeft(f"{run_dir}: {reason_of(error)}: the run stopped (metrics.json: failed)") from None
                raise


def build_or_record(cfg: DictConfig, start: Start, threads: int | None, stop: StopRequest, records: bool) -> Experiment:
    """`build`, before anything is written; a run that ends here gets a record (`records`: rank 0), unless its folder
    has one: interrupted, or failed for a reason that is not the user's mistake (which the entry point reports)."""
    run_dir = Path(cfg.paths.output_dir)
    try:
        experiment = build(cfg, start, threads)  # what the data refuses is refused here, before any write
        refuse_relaunching_strategy(experiment)
        check_resume(start, experiment.task, experiment.trainer)  # a resumed file's states: before the folder moves
        return experiment
    except (Interrupted, KeyboardInterrupt) as stopped:
        if records:
            record_unstarted(cfg.name, run_dir, "interrupted", stop_reason(stopped, stop), cfg.monitor.metric,
                             cfg.monitor.mode)  # fmt: skip
        raise Interrupted(stop_reason(stopped, stop)) from None
    except HyperlabError:
        raise
    except Exception as error:  # e.g. a network that does not fit the data's shape
        if records:
            record_unstarted(cfg.name, run_dir, "failed", error_line(error), cfg.monitor.metric, cfg.monitor.mode)
        raise


def stop_reason(stopped: BaseException, stop: StopRequest) -> str:
    return str(stopped) if isinstance(stopped, Interrupted) else f"stopped by {stop.signal or 'a signal'}"


def error_line(error: BaseException) -> str:
    """An unexpected error as metrics.json records it: its type and its message's last line."""
    return f"{type(error).__name__}: {last_line(error)}"


def done_already(cfg: DictConfig, start: Start, previous: dict[str, Any] | None) -> bool:
    """Whether a re-run (resume=true, or resuming from a checkpoint) finds its run completed: nothing to do."""
    if previous is None or previous.get("status") != "completed" or not (cfg.resume or start.resumes):
        return False
    return not start.resumes or cfg.trainer.max_epochs <= (previous.get("epochs") or 0)


def refuse_relaunching_strategy(experiment: Experiment) -> None:
    """DDP re-runs the command line for its other processes, unless the sweep's launcher had SLURM start them (a job
    of hydra/launcher=slurm with one task per device)."""
    launcher = experiment.trainer.strategy.launcher
    if not is_script_launcher(launcher) or not sweeping():
        return
    submitted = "submitit" in str(HydraConfig.get().launcher.get("_target_", "")).lower()
    if not (submitted and launcher.cluster_environment.creates_processes_externally):
        raise ConfigError(
            f"trainer.strategy: {type(experiment.trainer.strategy).__name__} starts its other processes by re-running "
            "the command line, which in a sweep (-m) would re-run the whole sweep: use trainer.strategy=ddp_spawn"
        )


def sweeping() -> bool:
    """Whether this run is one of a sweep's (hyperlab-train -m)."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def new_record(experiment: Experiment, run_dir: Path, started: float) -> RunRecord:
    cfg = experiment.cfg
    return RunRecord(
        cfg.name, run_dir, started,
        best_score=None, best_epoch=None, best_checkpoint="", epochs=0,
        threads=torch.get_num_threads(), loop=experiment.loop,
        train_time_s=0.0,  # the epochs alone; wall_time_s is the whole run
        monitor=cfg.monitor.metric, monitor_mode=cfg.monitor.mode,  # (as the data settled them)
        kind=experiment.task.kind, history=[],
    )  # fmt: skip


def run_and_record(experiment: Experiment, run_dir: Path, start: Start, record: RunRecord, stop: StopRequest) -> dict:
    """Fit and test (`fit_and_record`), or with tune=lr_find find the learning rate instead (hyperlab.tuning)."""
    if experiment.cfg.tune:
        return find_learning_rate(experiment, run_dir, record, stop)
    return fit_and_record(experiment, run_dir, start, record, stop)


def fit_and_record(experiment: Experiment, run_dir: Path, start: Start, record: RunRecord, stop: StopRequest) -> dict:
    """Fit, test the best checkpoint and record the run (its folder is locked and its signals handled by `train`);
    with several processes, rank 0 alone writes."""
    cfg, datamodule, task, trainer = experiment.cfg, experiment.datamodule, experiment.task, experiment.trainer
    task.stop = stop
    log.info(f"training loop: {experiment.loop}")
    if start.resumes:
        log.info(f"resuming from {start.path}")
    writes = trainer.is_global_zero
    if writes:
        write_config(run_dir, task.run_config)
    status, error = fit(experiment, start.path if start.resumes else None, stop, record)
    checkpoint = trainer.checkpoint_callback
    best_path = checkpoint.best_model_path if checkpoint is not None else ""
    if best_path and start.resumes:  # restored from the file (in this run's folder: see Task): checked
        read_checkpoint(best_path)
    if is_spawn_launcher(trainer.strategy.launcher):
        record.fields.update(spawned_progress(checkpoint))
    best_score, epoch = best_of(best_path, cfg.monitor.metric)
    if not best_path:  # no checkpoint kept (fast_dev_run, callbacks=none): the best validation the run logged
        best_score, epoch = best_in_history(task.history, cfg.monitor.metric, cfg.monitor.mode)
    record.fields.update(best_score=best_score, best_epoch=epoch, best_checkpoint=best_path)
    if status == "completed" or (status == "diverged" and best_path):  # diverged: tested on its best so far
        (test_metrics,) = trainer.test(
            task, datamodule=datamodule, ckpt_path=best_path or None, weights_only=True, verbose=False
        )
        record.fields["metrics"].update(scalars(test_metrics))
    splits = getattr(datamodule, "splits", {})  # (a datamodule of one's own may keep no splits: no note)
    labels = splits["val"][1] if "val" in splits and task.kind == "classification" else None
    record.fields["note"] = chance_note(task.kind, labels, task.history)
    if datamodule.reference_parameters():
        record.fields["reference_parameters"] = datamodule.reference_parameters()
        record.fields["reference_label"] = datamodule.reference_label
    if not writes:
        return record.fields
    write_preprocessing(run_dir, datamodule.state_dict())
    typed = command_line_overrides()
    record.fields["hparams"] = hparams = flat_hparams(cfg, task, typed)
    for logger in trainer.loggers:
        if isinstance(logger, HyperlabTensorBoardLogger):
            logger.log_run_record(hparams, status, started=time.time() - (time.perf_counter() - record.started))
        else:
            record_in_logger(logger, hparams, record.fields, status, trainer.global_step)
        logger.finalize("success" if status == "completed" else "failed")  # (the statuses loggers know)
        end_run(logger, status)
    result = record.write(status, error)
    experiment_folder = Path(cfg.paths.log_dir) / cfg.name
    tensorboard = any(isinstance(logger, HyperlabTensorBoardLogger) for logger in trainer.loggers)
    if tensorboard and not sweeping() and run_dir.parent.resolve() == experiment_folder.resolve():
        write_experiment_record(experiment_folder, typed, result)  # (a sweep's runs: the sweep's, at its end)
    if not sweeping():  # (a sweep's run is reported by the sweep's progress line, its record by metrics.json)
        report(result)
    return result


def fit(experiment: Experiment, resume_from: str | None, stop: StopRequest, record: RunRecord) -> tuple[str, Any]:
    """`Trainer.fit`; returns how it ended (completed, diverged or pruned, and why) with what it reached in `record`."""
    datamodule, task, trainer = experiment.datamodule, experiment.task, experiment.trainer
    status, error = "completed", None
    try:
        stop.defer = True  # while training, a signal stops the run before its next step (see StopRequest)
        with warnings.catch_warnings():
            if not task.automatic_optimization:  # (Lightning would call the fast loop's chunks training batches)
                warnings.filterwarnings("ignore", message="The number of training batches .* logging interval")
            trainer.fit(task, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
        stop.defer = False
        stop.check(trainer.global_step)  # a signal during the last validation or checkpoint
        pruned = pruned_reason(trainer)  # an Optuna search's pruner stopped the run (hyperlab.callbacks.pruning)
        if pruned:
            status, error = "pruned", pruned
            log.info(f"{experiment.cfg.name}: {pruned}")
    except MisconfigurationException as refused:  # a combination Lightning refuses once it sees the data
        raise ConfigError(f"trainer: Lightning refuses these settings: {last_line(refused)}") from None
    except Diverged as diverged:
        status, error = "diverged", str(diverged)
        log.warning(f"{experiment.cfg.name}: {diverged}")
    finally:
        stop.defer = False
        task.stop_training_clock()  # on_train_end does not run when fit stops with an error
        metrics = {**task.resumed_metrics, **trainer.callback_metrics}
        record.fields["metrics"] = scalars({key: value for key, value in metrics.items() if key != STEP_LOSS})
        record.fields["epochs"] = trainer.current_epoch
        record.fields["train_time_s"] = round(task.training_seconds, 3)  # earlier attempts' included
        record.fields["history"] = task.history
    return status, error


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


def flat_hparams(cfg: DictConfig, task: Task, typed: dict[str, str] | None = None) -> dict[str, Any]:
    """The run's hyper-parameters for TensorBoard's HParams tab (and metrics.json): flat keys, plain values.

    A config group is named by the option Hydra picked (`optimizer: sgd`, which tells apart options of one class),
    outside a Hydra command by its class (`optimizer._target_: torch.optim.SGD` becomes `optimizer: SGD`); lists
    become strings. The task is the one the run trained: its kind and its loss (`task.loss` in the config is
    regression's choice, never a classifier's). A key `typed` on the command line is there too, whatever its group
    (`trainer.gradient_clip_val=0.5`, `callbacks=none`).
    """
    choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    flat: dict[str, Any] = {"name": cfg.name, "seed": cfg.seed, "trainer.max_epochs": cfg.trainer.max_epochs}
    flat.update({"task.kind": task.kind, "task.loss": type(task.loss_fn).__name__})
    for group in HPARAM_GROUPS:
        for key, value in plain(cfg[group]).items():
            if key == "_target_":
                flat[group] = choices.get(group) or value.rsplit(".", 1)[-1]
            else:
                flat[f"{group}.{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    for key, text in (typed or {}).items():
        value = choices[key] if key in choices else OmegaConf.select(cfg, key, default=text)
        flat.setdefault(key, value if isinstance(value, (int, float, str, bool)) else text)
    return flat


def command_line_overrides() -> dict[str, str]:
    """The keys this run's command line set, with their values as typed, but for those that pick where the run
    goes or what it runs on (conf/hydra/default.yaml's exclude_keys); none outside a Hydra command."""
    if not HydraConfig.initialized():
        return {}
    hydra = HydraConfig.get()
    excluded = set(hydra.job.config.override_dirname.exclude_keys)
    items = [item.split("=", 1) for item in hydra.overrides.task if "=" in item and not item.startswith("~")]
    return {key.lstrip("+"): value for key, value in items if key.lstrip("+") not in excluded}


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
