"""The command-line entry points, side by side. Every command takes Hydra's `key=value` overrides of its config in
`conf/` (train.yaml, finetune.yaml, predict.yaml, sweep_table.yaml; an evaluation overrides the train.yaml its
checkpoint's run was composed from), composed one way (`config.compose_config`), and ends one way
(`errors.exit_for`): a user's mistake is one line `error: ...` and status 2, an interrupted run `interrupted: ...`
and status 130. The command line's config is composed and checked (`config.check_declared`) before torch and
Lightning are imported (seconds of a command's start): a wrong key, value or option is refused in a moment (so this
module imports each command's module when it runs; docs/benchmarks.md, "A refusal").

    hyperlab-train [-m] key=value ...        train and test (a sweep with -m)            hyperlab.train
    hyperlab-finetune ckpt_path=... ...      a new run from a checkpoint's weights       hyperlab.start
    hyperlab-eval ckpt_path=... ...          test a checkpoint in a fresh process        hyperlab.evaluate
    hyperlab-predict ckpt_path=... images=.. classify your own images or rows            hyperlab.predict
    hyperlab-sweep-table folder=...          (re)write a sweep's table and heatmap       hyperlab.sweeps.table
"""

import functools
import inspect
import logging
import os
import re
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
    RecordNotWritten,
    RunFolderInUse,
    exit_for,
    first_line,
    note_interruption,
)

try:
    import hydra
    import yaml
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf import DictConfig
    from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

    from hyperlab.classes import CONF_DIR
    from hyperlab.compat import hydra_args_parser
    from hyperlab.config import check_declared, compose_config, validate_predict
    from hyperlab.folder_locks import refuse_taken
    from hyperlab.quiet import LIGHTNING_INFO_LOGGER, DropMessages, quiet_third_party
    from hyperlab.replicates import refuse_swept_counts, with_replicates
    from hyperlab.run_record import record_unstarted
    from hyperlab.trainer_arguments import check_trainer_overrides
except KeyboardInterrupt as stopped:  # Ctrl-C while a command's first modules load: one line and 130 all the same
    exit_for(stopped)

log = logging.getLogger(__name__)
MACHINE_REPORT = DropMessages("GPU available:", "TPU available:", "HPU available:", "IPU available:")
RUN_CHATTER = DropMessages("Restoring states from the checkpoint", "Loaded model weights from the checkpoint",
                           "`Trainer.fit` stopped:")  # fmt: skip


def entry_point(main: Callable[[], None]) -> Callable[[], None]:
    """A command's `main`, which ends in one line and status 130 on Ctrl-C wherever it comes: while torch loads,
    between a sweep's runs, in Hydra's own code (a run's own signals are handled by hyperlab.train). Also where
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


HELP_FLAGS = {"--help", "-h"}


def commands_table() -> str:
    """hyperlab's commands, as this module's docstring lists them."""
    lines = [line for line in (__doc__ or "").splitlines() if line.startswith("    hyperlab-")]
    return "\n".join(["hyperlab's commands (each takes --help):", *lines])


def help_text(config_name: str) -> str:
    """hyperlab-train --help (and hyperlab-finetune's): the presets, the groups to choose from with their options and
    defaults (conf/), a sweep, and the other commands."""
    defaults = {}
    for entry in yaml.safe_load((CONF_DIR / "train.yaml").read_text()).get("defaults", []):
        if isinstance(entry, dict):
            defaults.update({str(k).split(" ")[-1]: v for k, v in entry.items()})
    folders = sorted(f for f in CONF_DIR.iterdir() if f.is_dir() and f.name not in ("hydra", "experiment"))
    options = {folder.name: sorted(p.stem for p in folder.glob("*.yaml")) for folder in folders}
    launchers = sorted(p.stem for p in (CONF_DIR / "hydra" / "launcher").glob("*.yaml")) + ["joblib", "submitit_local"]
    lines = [
        f"hyperlab-{'finetune' if config_name == 'finetune' else 'train'} [-m] [key=value ...]",
        "  train and test one experiment; with -m, a sweep: every combination of the values given as a,b,c",
        "",
        "experiments (experiment=<preset>, conf/experiment/): "
        + ", ".join(sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))),
        "",
        "groups (group=option; default in brackets, conf/<group>/):",
        *(
            f"  {group:<14} {' | '.join(names)}" + (f"  [{defaults[group]}]" if defaults.get(group) else "")
            for group, names in options.items()
        ),  # fmt: skip
        f"  {'hydra/launcher':<14} {' | '.join(sorted(launchers))}  [basic: one run after another]",
        "",
        "examples:",
        "  hyperlab-train experiment=mnist_cnn data.root=../shared/data optimizer.lr=0.01 trainer.max_epochs=3",
        "  hyperlab-train -m experiment=mnist_mlp sweep=homework data.root=../shared/data    # the homework: 64 runs",
        "  hyperlab-train -m experiment=blobs optimizer.lr=0.1,0.01 model.depth=1,2          # any grid",
        "  hyperlab-train -m experiment=blobs optimizer.lr=0.1,0.01 repeats=3                # each 3 times: noise?",
        "  hyperlab-train experiment=iris data.folds=5                                       # 5-fold cross-validation",
        "  hyperlab-train -m experiment=mnist_mlp hparams_search=optuna data.root=../shared/data",
        "  hyperlab-train --cfg job experiment=iris       # print the composed config (every key) and stop",
        "  (Hydra's own flags: --hydra-help)",
        "",
        commands_table(),
    ]
    return "\n".join(lines)


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
    """A Hydra app (run folders, -m sweeps, launchers), whose command line is composed once first: Hydra's own
    report of a misspelt key or option is several lines and status 1."""
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


def check_command_line(config_name: str, arguments: list[str]) -> list[str]:
    """Compose the config as the command line asks (a sweep's first value of each swept key) and check it as far as
    hyperlab's own declarations go (`check_declared`), so that a misspelt key or option, or a value of the wrong type
    or out of range, is refused before Hydra starts, and before torch is imported. A command line that asks Hydra for
    something else (--help, --cfg, --info, another config: -cn, -cd, -cp) is left to Hydra. Refused as well, before
    Hydra writes into the run folder: several values without -m, and a run folder that holds a run or is in use.
    Returns the command line Hydra runs: with the runs `repeats` and `data.folds` ask for as sweep values
    (hyperlab.replicates)."""
    check_trainer_overrides(arguments)
    parsed = hydra_args_parser().parse_known_args(arguments)[0]
    asked = [flag for flag in HYDRA_ONLY_FLAGS if getattr(parsed, flag, None)]
    if parsed.multirun and set(asked) & {"cfg", "info", "shell_completion"}:
        flag = next(f for f in ("cfg", "info", "shell_completion") if f in asked)
        raise ConfigError(
            f"--{flag.replace('_', '-')} shows one config and runs nothing, and -m runs a sweep: leave out -m (with "
            "--cfg hydra, hydra.sweeper.params shows what the sweep varies; a sweep's own settings are in its "
            "multirun.yaml)"
        )
    if asked:
        return arguments
    try:
        overrides = OverridesParser.create().parse_overrides(parsed.overrides)
    except HydraException as error:
        raise ConfigError(first_line(error)) from None
    search = next((o for o in overrides if o.key_or_group.lstrip("+~") == "hparams_search"), None)
    if search is not None and not parsed.multirun and search.value() not in (None, "null"):
        raise ConfigError(f"hparams_search={search.value()}: a search runs trials as a sweep: add -m")
    tune = next((o for o in overrides if o.key_or_group.lstrip("+~") == "tune"), None)
    if tune is not None and parsed.multirun and tune.value() not in (None, "null", "none"):
        raise ConfigError(f"{tune.input_line} finds one learning rate for one experiment: leave out -m")
    chosen = []
    for override, text in zip(overrides, parsed.overrides, strict=True):
        key = override.key_or_group.lstrip("+~")
        # (Hydra's own keys are Hydra's to check, but for a config folder of one's own and the run folder)
        if key.startswith("hydra") and key not in ("hydra.searchpath", "hydra.run.dir"):
            continue
        if override.is_sweep_override():
            try:
                first = next(iter(override.sweep_string_iterator()), None)
            except HydraException:  # an interval or a glob: the sweeper chooses the values
                continue
            if first is None:
                continue
            text = f"{text.split('=', 1)[0]}={first}"
        chosen.append(text)
    refuse_swept_counts({o.key_or_group.lstrip("+~") for o in overrides if o.is_sweep_override()})
    cfg = compose_config(config_name, chosen, with_hydra=True)  # (with the run folder Hydra would write into)
    check_declared(cfg)
    if not str(cfg.paths.log_dir).strip():  # (the runs would go under the file system's root)
        raise ConfigError(f"paths.log_dir={cfg.paths.log_dir!r} is not allowed: expected a folder for the runs (logs)")
    typed = {override.key_or_group.lstrip("+~") for override in overrides}
    command_line = with_replicates(arguments, typed, cfg.repeats, cfg.data.get("folds"))
    if parsed.multirun or command_line[:1] == ["-m"]:  # (repeats, data.folds: -m added for them)
        return command_line
    swept = [text for override, text in zip(overrides, parsed.overrides, strict=True) if override.is_sweep_override()
             and not override.key_or_group.lstrip("+~").startswith("hydra")]  # fmt: skip
    if swept:
        raise ConfigError(
            f"{swept[0]} is not allowed without -m: several values make a sweep, which runs with -m; a list is "
            "written [a,b], a text with commas quoted"
        )
    refuse_taken(cfg)  # before Hydra writes its record of this call over that of the run in the folder
    return command_line


def quoted_paths(arguments: list[str]) -> list[str]:
    """`ckpt_path=<file>` (or any `key=<path>`) naming a file or folder that exists, quoted for Hydra's parser, so that
    a sweep's run folder (`.../depth=2,hidden=512,lr=0.001/checkpoints/best.ckpt`) can be pasted as it is: Hydra
    reads `=` and `,` in a value as its own syntax. A value already quoted, or that names nothing (but a checkpoint, so
    that a missing one is reported as missing), is left as typed."""
    quoted = []
    for argument in arguments:
        key, equals, value = argument.partition("=")
        special = equals and value[:1] not in ("", "'", '"') and re.search(r"[=,\s()\[\]{}'\"]", value)
        if special and (Path(value).exists() or key.lstrip("+") == "ckpt_path"):
            escaped = value.replace("'", "\\'")  # (Hydra's quoted strings escape their quote with a backslash)
            argument = f"{key}='{escaped}'"
        quoted.append(argument)
    return quoted


# what Hydra's command line does besides running the app (its flags' names in compat.hydra_args_parser)
HYDRA_ONLY_FLAGS = ("help", "hydra_help", "version", "cfg", "info", "shell_completion", "config_name", "config_path",
                    "config_dir", "experimental_rerun")  # fmt: skip


def run_job(cfg: DictConfig) -> dict[str, Any] | None:
    """One run of hyperlab-train (see `train_job`); in a sweep, followed by a line saying where the sweep stands."""
    from hyperlab.sweeps.progress import progress_line
    from hyperlab.train import sweeping

    quiet_third_party()  # (again: a joblib or SLURM worker runs this in a process of its own, where no main() ran)
    result = train_job(cfg)
    if sweeping():
        log.info(progress_line(Path(HydraConfig.get().sweep.dir), Path(cfg.paths.output_dir).name))
    return result


def train_job(cfg: DictConfig) -> dict[str, Any] | None:
    """One run of hyperlab-train (or of its sweep) as its exit status says: in a sweep a run refused or failed is
    recorded and the sweep goes on; an interrupted run stops the sweep too. Returns what the run's metrics.json says
    (an Optuna search tells its study the best value of the monitored metric, or that the run was pruned); None for
    a run that failed."""
    from hyperlab.sweeps.plan import note_not_run
    from hyperlab.train import sweeping, train

    hydra_config = HydraConfig.get()
    if sweeping():  # dozens of runs: Lightning's machine report once, its checkpoint chatter never
        logging.getLogger(LIGHTNING_INFO_LOGGER).addFilter(RUN_CHATTER)
        if hydra_config.job.num > 0:
            logging.getLogger(LIGHTNING_INFO_LOGGER).addFilter(MACHINE_REPORT)
    try:
        result = train(cfg, threads=launcher_threads(hydra_config))
    except HyperlabError as error:
        if not sweeping():
            exit_for(error)
        print(f"error: {error}", file=sys.stderr)
        run_dir = Path(cfg.paths.output_dir)
        if isinstance(error, RunFolderInUse):  # (its folder is another run's: the sweep's folder notes it)
            note_not_run(Path(HydraConfig.get().sweep.dir), run_dir.name, str(error))
        elif not isinstance(error, RecordNotWritten):  # (tried already)
            try:
                record_unstarted(cfg.name, run_dir, "failed", str(error), cfg.monitor.metric, cfg.monitor.mode)
            except RecordNotWritten as lost:
                print(f"error: {lost}", file=sys.stderr)
        return None
    except (Interrupted, KeyboardInterrupt) as stopped:
        exit_for(stopped)
    except Exception:
        log.exception(f"{cfg.name} failed")  # recorded as failed by train, with its error's last line
        if sweeping():
            return None
        raise
    return result


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


# ----------------------------------------------------------------------------------------- the other commands
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
