"""A command line checked before Hydra starts, and before torch and Lightning are imported (seconds of a command's
start): a misspelt key or option, a value of the wrong type or out of range, several values without -m, or a run
folder that holds a run is refused in a moment (docs/benchmarks.md, "A refusal"). Paths are quoted for Hydra's
parser (`quoted_paths`), so that a sweep's run folder can be pasted as a checkpoint's path."""

import re
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from hyperlab.compat import hydra_args_parser
from hyperlab.config import check_declared, compose_config
from hyperlab.errors import ConfigError, first_line
from hyperlab.folder_locks import refuse_taken
from hyperlab.replicates import refuse_swept_counts, with_replicates
from hyperlab.trainer_arguments import check_trainer_overrides


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
