"""hyperlab's commands, side by side (`hyperlab-<command>`, or `python -m hyperlab <command>`; the list:
hyperlab.help.COMMANDS). Every command takes Hydra's `key=value` overrides of its config in `conf/` (train.yaml,
finetune.yaml, predict.yaml, sweep_table.yaml; an evaluation overrides the train.yaml its checkpoint's run was composed
from), composed one way (`config.compose_config`), and ends one way (`errors.exit_for`): a user's mistake is one line
`error: ...` and status 2, an interrupted run `interrupted: ...` and status 130.

The command line is checked before torch and Lightning are imported (hyperlab.command_line), so each command's module
is imported when it runs. This module alone reads Hydra's runtime config: a run gets what it needs of it as plain
values (`hyperlab.invocation.Invocation`).
"""

import functools
import inspect
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hyperlab.errors import (
    INTERRUPTIONS,
    ConfigError,
    HyperlabError,
    Interrupted,
    RunFolderInUse,
    exit_for,
    first_line,
    note_interruption,
)

try:
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

    from hyperlab.classes import CONF_DIR, use_config_folders
    from hyperlab.command_line import check_command_line, quoted_paths
    from hyperlab.config import compose_config, validate_predict
    from hyperlab.help import HELP_FLAGS, commands_table, help_text
    from hyperlab.invocation import Invocation
    from hyperlab.quiet import LIGHTNING_INFO_LOGGER, DropMessages, quiet_third_party
except KeyboardInterrupt as stopped:  # Ctrl-C while a command's first modules load: one line and 130 all the same
    exit_for(stopped)

log = logging.getLogger(__name__)
MACHINE_REPORT = DropMessages("GPU available:", "TPU available:", "HPU available:", "IPU available:")
RUN_CHATTER = DropMessages("Restoring states from the checkpoint", "Loaded model weights from the checkpoint",
                           "`Trainer.fit` stopped:")  # fmt: skip


def entry_point(main: Callable[[], None]) -> Callable[[], None]:
    """A command's `main`, which ends in one line and status 130 on Ctrl-C wherever it comes: while torch loads,
    between a sweep's runs, in Hydra's own code (a run's own signals are handled by hyperlab.signals). Also where
    third-party code swallowed the interruption halfway through loading a module (numpy's, under scipy's), or made
    another error of it (OmegaConf's): an error after Ctrl-C is the interruption's (`note_interruption`)."""

    @functools.wraps(main)
    def run() -> None:
        previous = signal.signal(signal.SIGINT, note_interruption)
        try:
            main()
        except (Interrupted, KeyboardInterrupt) as stopped:
            exit_for(stopped)
        except Exception as error:
            if INTERRUPTIONS:
                exit_for(error)
            raise
        finally:
            signal.signal(signal.SIGINT, previous)
            INTERRUPTIONS.clear()

    return run


# ----------------------------------------------------------------------------------------- train and finetune
@entry_point
def train_main() -> None:
    """hyperlab-train: `ckpt_path` resumes the run the checkpoint belongs to."""
    hydra_app("train")


@entry_point
def finetune_main() -> None:
    """hyperlab-finetune: a new run that starts from the weights of the checkpoint at `ckpt_path`."""
    hydra_app("finetune")


def hydra_app(config_name: str) -> None:
    """A Hydra app (run folders, -m sweeps, launchers), whose command line is checked first: Hydra's own report of
    a misspelt key or option is several lines and status 1."""
    if HELP_FLAGS & set(sys.argv[1:]):  # (Hydra's own help lists its internals: --hydra-help still shows it)
        print(help_text(config_name))
        return
    quiet_third_party()
    sys.argv[1:] = quoted_paths(sys.argv[1:])
    try:
        sys.argv[1:] = check_command_line(config_name, sys.argv[1:])
    except ConfigError as error:
        exit_for(error)
    from hyperlab.sweeps.callback import finish_open_sweeps  # (torch, Lightning: once the command line is checked)

    try:
        hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)(run_job)()
    finally:
        finish_open_sweeps(sys.argv[1:])  # (a sweep stopped before its end: the table of what it made)


def run_job(cfg: DictConfig) -> dict[str, Any] | None:
    """One run of hyperlab-train (or of its sweep) as its exit status says: in a sweep a run refused or failed is
    recorded (hyperlab.train) and the sweep goes on, followed by a line saying where the sweep stands; an interrupted
    run stops the sweep too. Returns what the run's metrics.json says (an Optuna search tells its study the best value
    of the monitored metric, or that the run was pruned); None for a run that failed."""
    from hyperlab.sweeps.plan import note_not_run
    from hyperlab.sweeps.progress import progress_line
    from hyperlab.train import train

    quiet_third_party()  # (again: a joblib or SLURM worker runs this in a process of its own, where no main() ran)
    hydra_config = HydraConfig.get()
    invocation = invocation_of(hydra_config)
    use_config_folders(Path(source.path) for source in hydra_config.runtime.config_sources if source.schema == "file")
    if invocation.sweeping:  # dozens of runs: Lightning's machine report once, its checkpoint chatter never
        logging.getLogger(LIGHTNING_INFO_LOGGER).addFilter(RUN_CHATTER)
        if invocation.job_number > 0:
            logging.getLogger(LIGHTNING_INFO_LOGGER).addFilter(MACHINE_REPORT)
    try:
        result = train(cfg, invocation)
    except HyperlabError as error:
        if not invocation.sweeping:
            exit_for(error)
        print(f"error: {error}", file=sys.stderr)
        if isinstance(error, RunFolderInUse):  # (its folder is another run's: the sweep's folder notes it)
            note_not_run(invocation.sweep_dir, Path(cfg.paths.output_dir).name, str(error))
        return None
    except (Interrupted, KeyboardInterrupt) as stopped:
        exit_for(stopped)
    except Exception:
        log.exception(f"{cfg.name} failed")  # recorded as failed by train, with its error's last line
        if invocation.sweeping:
            return None
        raise
    if invocation.sweeping:
        log.info(progress_line(invocation.sweep_dir, Path(cfg.paths.output_dir).name))
    else:
        record_in_experiment(cfg, invocation, result)
    return result


def invocation_of(hydra_config: DictConfig) -> Invocation:
    """What a run needs of Hydra's runtime config, as plain values."""
    sweeping = hydra_config.mode == RunMode.MULTIRUN
    typed = tuple(hydra_config.overrides.task)
    excluded = set(hydra_config.job.config.override_dirname.exclude_keys)  # where a run goes, not what it is
    items = [item.split("=", 1) for item in typed if "=" in item and not item.startswith("~")]
    return Invocation(
        program="hyperlab-finetune" if hydra_config.job.config_name == "finetune" else "hyperlab-train",
        typed=typed,
        described_by={key.lstrip("+"): value for key, value in items if key.lstrip("+") not in excluded},
        choices={group: str(option) for group, option in hydra_config.runtime.choices.items() if option is not None},
        folder_named=any(item.split("=", 1)[0] == "hydra.run.dir" for item in hydra_config.overrides.hydra),
        sweep_dir=Path(hydra_config.sweep.dir) if sweeping else None,
        job_number=int(hydra_config.job.get("num") or 0) if sweeping else 0,
        threads=launcher_threads(hydra_config.launcher),
        submitted="submitit" in str(hydra_config.launcher.get("_target_", "")).lower(),
        search_study=search_study(hydra_config) if sweeping else None,
    )


def launcher_threads(launcher: DictConfig) -> int | None:
    """CPU threads per job when a launcher runs several jobs at once, so that they don't fight over cores."""
    if launcher.get("cpus_per_task"):
        return int(launcher.cpus_per_task)
    jobs = launcher.get("n_jobs")
    if jobs:
        cores = os.cpu_count() or 1
        return max(1, cores // (cores if jobs < 0 else jobs))
    return None


def search_study(hydra_config: DictConfig) -> dict[str, Any] | None:
    """The study an Optuna search's trials report to (hyperlab's sweeper: hparams_search=optuna), from the sweeper's
    settings (its storage, by default the sweep folder's own; its name; its pruner); None for another sweeper."""
    sweeper = hydra_config.sweeper
    if "study_name" not in sweeper:
        return None
    from hyperlab.sweeps.optuna import default_storage

    return {
        "storage": sweeper.storage or default_storage(hydra_config.sweep.dir),
        "study_name": sweeper.study_name,
        "pruner": OmegaConf.to_container(sweeper.pruner) if sweeper.get("pruner") else None,
    }


def record_in_experiment(cfg: DictConfig, invocation: Invocation, result: dict[str, Any]) -> None:
    """A run of its own in its experiment's folder (`logs/<name>/<time>`) that logs to TensorBoard: the folder's
    TensorBoard record, with the run added (`tensorboard --logdir logs/<name>`; a sweep's runs: the sweep's record,
    written at its end). The command writes it, not the run, which writes into its own folder alone."""
    from hyperlab.sweeps.table import write_experiment_record

    experiment_folder = Path(cfg.paths.log_dir) / cfg.name
    targets = {str(logger.get("_target_")) for logger in cfg.logger.values()}
    tensorboard = "hyperlab.loggers.TensorBoardLogger" in targets  # (whose runs the folder's record lists)
    if tensorboard and Path(result["run_dir"]).parent.resolve() == experiment_folder.resolve():
        write_experiment_record(experiment_folder, invocation.described_by, result)


# ----------------------------------------------------------------------------------------- the other commands
def run_command(command: Callable[[list[str]], Any], usage: str) -> Any:
    """Run a command that is not a Hydra app on the command line's `key=value` arguments (`usage`: its --help)."""
    if HELP_FLAGS & set(sys.argv[1:]):
        print(f"{usage.strip()}\n\n{commands_table()}")
        return None
    quiet_third_party()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return command(quoted_paths(sys.argv[1:]))
    except (HyperlabError, Interrupted, KeyboardInterrupt) as error:
        exit_for(error)
    except OmegaConfBaseException as error:  # e.g. a required key left out (`folder: ???`)
        key = getattr(error, "full_key", None)
        if isinstance(error, MissingMandatoryValue):
            exit_for(ConfigError(f"{key} is required: give it on the command line ({key}=...)"))
        exit_for(ConfigError(f"{key}: {first_line(error)}" if key else first_line(error)))


@entry_point
def evaluate_main() -> None:
    """hyperlab-eval ckpt_path=<file> [data=<option>] [data.<key>=<value> ...]"""
    from hyperlab.evaluate import evaluate_command

    run_command(evaluate_command, inspect.getdoc(sys.modules["hyperlab.evaluate"]) or "")


@entry_point
def predict_main() -> None:
    """hyperlab-predict ckpt_path=<file> images=<file or folder> | table=<file.csv>"""

    def command(arguments: list[str]) -> Any:
        cfg = compose_config("predict", arguments)
        validate_predict(cfg)  # (before torch is imported)
        from hyperlab.predict import predict_command

        return predict_command(cfg)

    run_command(command, (CONF_DIR / "predict.yaml").read_text())


@entry_point
def sweep_table_main() -> None:
    """hyperlab-sweep-table folder=<sweep folder> [metric=...] [sort=...] [pivot=[rows,columns]] [panels=...]"""

    def command(arguments: list[str]) -> Any:
        cfg = compose_config("sweep_table", arguments)  # (before matplotlib and the tasks are imported)
        from hyperlab.sweeps.table import table_command

        return table_command(cfg)

    run_command(command, (CONF_DIR / "sweep_table.yaml").read_text())


COMMANDS = {"train": train_main, "finetune": finetune_main, "eval": evaluate_main, "predict": predict_main,
            "sweep-table": sweep_table_main}  # fmt: skip
