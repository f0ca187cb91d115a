"""`python -m hyperlab <command> [key=value ...]` runs `hyperlab-<command>` (train, finetune, eval, predict,
sweep-table: hyperlab.help.COMMANDS), for a Python whose scripts folder is not on the PATH.

Lightning's ddp strategy starts its other processes by re-running the command line as `python -m hyperlab.__main__`
followed by `sys.argv[1:]` and its own overrides: the command word is gone from `sys.argv` by then (Hydra would read
it as an override), so this module leaves it in the environment (`COMMAND_VARIABLE`), which those processes inherit
and read back (only there: Lightning sets `LOCAL_RANK` for them)."""

import os
import sys

from hyperlab.cli import COMMANDS
from hyperlab.errors import ConfigError, exit_for
from hyperlab.help import commands_table

COMMAND_VARIABLE = "HYPERLAB_COMMAND"


def command_word() -> str:
    """The command: the first argument, or in a process Lightning started for ddp, the one its parent ran."""
    first = sys.argv[1] if len(sys.argv) > 1 else ""
    if first not in COMMANDS and "LOCAL_RANK" in os.environ and os.environ.get(COMMAND_VARIABLE) in COMMANDS:
        sys.argv.insert(1, os.environ[COMMAND_VARIABLE])
        return sys.argv[1]
    return first


if __name__ == "__main__":
    command = command_word()
    if command in ("", "--help", "-h"):
        print(commands_table())
        sys.exit(0 if command else 2)
    if command not in COMMANDS:
        exit_for(ConfigError(f"{command!r} is not a hyperlab command: expected one of {', '.join(COMMANDS)}"))
    os.environ[COMMAND_VARIABLE] = command
    sys.argv[0:2] = [f"hyperlab-{command}"]
    sys.exit(COMMANDS[command]())
