"""`train(cfg)`: one run, from its composed config to its record (the commands are in hyperlab.cli).

Read top to bottom, as the run goes: check (`validate`; the checkpoint it starts from: `start.how_it_starts`) ->
build (the data settles the config's `auto` values, then the task, callbacks, loggers and trainer:
`experiment.build`) -> lock the run folder (`folder_locks`) and set an earlier attempt aside (`run_folder`) ->
`Trainer.fit`, then `Trainer.test` on the best checkpoint -> record (metrics.json, config.yaml, the loggers'
end-of-run record); with tune=lr_find, Lightning's learning-rate finder instead of fit and test (hyperlab.tuning).
Nothing is written before the config, the checkpoint and the data have all been accepted.

However a run that reaches its folder ends, one wrapper (`every_end_recorded`) records it in metrics.json, whose
`status` says how: completed, diverged (the loss became NaN or infinite, or exploded: `tasks.stopping`), pruned (an
Optuna search stopped it), failed (an error; its last line is kept) or interrupted (Ctrl-C or SIGTERM, in any phase:
hyperlab.signals; the process exits with status 130). On a full disk: in brief, or, when not even that fits, one
line saying so (with a resumed run's earlier record put back: `run_record.RunRecord`).
"""

import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from hyperlab.callbacks import pruned_reason
from hyperlab.checkpoints import read_checkpoint
from hyperlab.compat import is_script_launcher, is_spawn_launcher
from hyperlab.config import validate
from hyperlab.errors import ConfigError, HyperlabError, NoRoomLeft, RecordNotWritten, RunFolderInUse, last_line
from hyperlab.experiment import Experiment, build
from hyperlab.folder_locks import locked, refuse_in_use, refuse_overwrite
from hyperlab.invocation import A_SCRIPT, Invocation
from hyperlab.json_files import NO_ROOM, reason_of
from hyperlab.loggers import TensorBoardLogger, end_run
from hyperlab.replicates import with_run_seed
from hyperlab.results import (
    best_in_history,
    best_of,
    flat_hparams,
    progress,
    record_in_logger,
    report,
    spawned_progress,
)
from hyperlab.run_folder import make_room
from hyperlab.run_record import RunRecord, read_result, record_unstarted, scalars, write_config, write_preprocessing
from hyperlab.signals import stop_on_signals, stop_reason
from hyperlab.start import Start, check_resume, how_it_starts
from hyperlab.tasks import Diverged, Interrupted
from hyperlab.tasks.chance import chance_note
from hyperlab.tasks.stopping import StopRequest
from hyperlab.tuning import find_learning_rate

log = logging.getLogger(__name__)


def train(cfg: DictConfig, invocation: Invocation = A_SCRIPT) -> dict[str, Any]:
    """Train and test the experiment `cfg` describes; returns what it also writes to `metrics.json`. `invocation`:
    what the command that started the run knows of it (a sweep's, the CPU threads a launcher gives each run, ...)."""
    started = time.perf_counter()
    run_dir = Path(cfg.paths.output_dir)
    records = rank_zero_only.rank == 0  # with several processes (DDP), rank 0 alone touches the folder
    stop = StopRequest()
    with stop_on_signals(stop) if records else nullcontext(), every_end_recorded(cfg, invocation, stop) as ending:
        ending.records = records
        validate(cfg)
        cfg = with_run_seed(cfg)  # a new config: what repeat `repeat` trains with (the data's shuffle follows it)
        start = how_it_starts(cfg, run_dir, invocation.folder_named)  # its checkpoint read and checked once
        previous = read_result(run_dir)
        if done_already(cfg, start, previous):
            log.info(f"{run_dir} already completed its {previous['epochs']} epochs: nothing to do (metrics.json)")
            return previous  # type: ignore[return-value]
        if records:
            refuse_overwrite(run_dir, resumes=start.resumes, rerun=cfg.resume)  # before the data is loaded
            refuse_in_use(run_dir)
        experiment = build(cfg, start, invocation)  # what the data refuses is refused here, before any write
        refuse_relaunching_strategy(experiment, invocation)
        check_resume(start, experiment.task, experiment.trainer)  # a resumed file's states: before the folder moves
        with locked(run_dir) if records else nullcontext():
            earlier = make_room(run_dir, resumes=start.resumes, rerun=cfg.resume) if records else None
            ending.record = record = new_record(experiment, run_dir, started, earlier)
            if experiment.cfg.tune:
                return find_learning_rate(experiment, run_dir, record, stop, invocation)
            return fit_and_record(experiment, start, record, stop, invocation)


@dataclass
class Ending:
    """What `every_end_recorded` needs to record a run: its record once the run has its folder (locked, an earlier
    attempt set aside), and whether this process records at all (DDP: rank 0 alone)."""

    record: RunRecord | None = None
    records: bool = True


@contextmanager
def every_end_recorded(cfg: DictConfig, invocation: Invocation, stop: StopRequest) -> Iterator[Ending]:
    """Record the run however it ends. Once it has its folder, its metrics.json says what it reached; before, a
    short one says why it ended, in the folder Hydra made for it and never over an earlier run's (`record_unstarted`).
    A user's mistake before the run has its folder is recorded in a sweep alone (its table accounts for every run;
    the command of a single run refuses it in one line, leaving nothing behind); a folder in use, never (it is
    another run's). Interruptions become `Interrupted`, a full disk `NoRoomLeft` (one line, not a traceback)."""
    ending = Ending()

    def write(status: str, error: str) -> None:
        stop.defer = True  # a further signal must not cut the record short
        if not ending.records:
            return
        if ending.record is not None:
            ending.record.write(status, error)
        else:
            record_unstarted(cfg.name, Path(cfg.paths.output_dir), status, error, cfg.monitor.metric,
                             cfg.monitor.mode)  # fmt: skip

    try:
        yield ending
    except (Interrupted, KeyboardInterrupt, SystemExit) as stopped:  # Lightning's SIGTERMException too
        write("interrupted", stop_reason(stopped, stop))
        raise Interrupted(stop_reason(stopped, stop)) from None
    except (RunFolderInUse, RecordNotWritten):
        raise
    except HyperlabError as error:
        if ending.record is not None or invocation.sweeping:
            write("failed", str(error))
        raise
    except Exception as error:
        write("failed", f"{type(error).__name__}: {last_line(error)}")
        if isinstance(error, OSError) and error.errno in NO_ROOM:  # (a full disk is no bug: one line)
            stopped_line = f"{cfg.paths.output_dir}: {reason_of(error)}: the run stopped (metrics.json: failed)"
            raise NoRoomLeft(stopped_line) from None
        raise


def done_already(cfg: DictConfig, start: Start, previous: dict[str, Any] | None) -> bool:
    """Whether a re-run (resume=true, or resuming from a checkpoint) finds its run completed: nothing to do."""
    if previous is None or previous.get("status") != "completed" or not (cfg.resume or start.resumes):
        return False
    return not start.resumes or cfg.trainer.max_epochs <= (previous.get("epochs") or 0)


def refuse_relaunching_strategy(experiment: Experiment, invocation: Invocation) -> None:
    """DDP re-runs the command line for its other processes, unless the sweep's launcher had SLURM start them (a job
    of hydra/launcher=slurm with one task per device)."""
    launcher = experiment.trainer.strategy.launcher
    if not is_script_launcher(launcher) or not invocation.sweeping:
        return
    if not (invocation.submitted and launcher.cluster_environment.creates_processes_externally):
        raise ConfigError(
            f"trainer.strategy: {type(experiment.trainer.strategy).__name__} starts its other processes by re-running "
            "the command line, which in a sweep (-m) would re-run the whole sweep: use trainer.strategy=ddp_spawn"
        )


def new_record(experiment: Experiment, run_dir: Path, started: float, earlier: Path | None) -> RunRecord:
    """The run's record as it starts (`earlier`: where an earlier attempt's record was set aside, put back if this
    attempt's cannot be written)."""
    cfg = experiment.cfg
    record = RunRecord(
        cfg.name, run_dir, started,
        best_score=None, best_epoch=None, best_checkpoint="", epochs=0,
        threads=torch.get_num_threads(), loop=experiment.loop,
        train_time_s=0.0,  # the epochs alone; wall_time_s is the whole run
        monitor=cfg.monitor.metric, monitor_mode=cfg.monitor.mode,  # (as the data settled them)
        kind=experiment.task.kind, history=[],
    )  # fmt: skip
    record.earlier = earlier
    return record


def fit_and_record(experiment: Experiment, start: Start, record: RunRecord, stop: StopRequest,
                   invocation: Invocation) -> dict[str, Any]:  # fmt: skip
    """Fit, test the best checkpoint and record the run, filling its record in as it goes (so that a run stopped at
    any point keeps what it had reached); with several processes, rank 0 alone writes."""
    cfg, datamodule, task, trainer = experiment.cfg, experiment.datamodule, experiment.task, experiment.trainer
    task.stop = stop
    log.info(f"training loop: {experiment.loop}")
    if start.resumes:
        log.info(f"resuming from {start.path}")
    writes = trainer.is_global_zero
    if writes:
        write_config(record.path.parent, task.run_config)
    try:
        status, error = fit(experiment, start.path if start.resumes else None, stop)
    finally:
        record.fields.update(progress(task, trainer))  # what the fit reached, however it ended
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
        record.fields.update(reference_parameters=datamodule.reference_parameters(),
                             reference_label=datamodule.reference_label)  # fmt: skip
    if not writes:
        return record.fields
    write_preprocessing(record.path.parent, datamodule.state_dict())
    record.fields["hparams"] = hparams = flat_hparams(cfg, task, invocation)
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_run_record(hparams, status, started=time.time() - (time.perf_counter() - record.started))
        else:
            record_in_logger(logger, hparams, record.fields, status, trainer.global_step)
        logger.finalize("success" if status == "completed" else "failed")  # (the statuses loggers know)
        end_run(logger, status)
    result = record.write(status, error)
    if not invocation.sweeping:  # (a sweep's run is reported by the sweep's progress line, its record by metrics.json)
        report(result)
    return result


def fit(experiment: Experiment, resume_from: str | None, stop: StopRequest) -> tuple[str, str | None]:
    """`Trainer.fit`; returns how it ended: completed, diverged or pruned, and why."""
    datamodule, task, trainer = experiment.datamodule, experiment.task, experiment.trainer
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
        log.warning(f"{experiment.cfg.name}: {diverged}")
        return "diverged", str(diverged)
    finally:
        stop.defer = False
    pruned = pruned_reason(trainer)  # an Optuna search's pruner stopped the run (hyperlab.callbacks.pruning)
    if pruned:
        log.info(f"{experiment.cfg.name}: {pruned}")
        return "pruned", pruned
    return "completed", None
