"""Errors a user can fix, and interruptions: each reported as one line, without a traceback (`exit_for`)."""

import sys
from typing import NoReturn


class HyperlabError(Exception):
    """Base of the errors that the entry points report in one line and exit with status 2."""


class ConfigError(HyperlabError):
    """A config key has a value that is out of range, of the wrong kind, or does not fit the rest."""


class RunFolderInUse(ConfigError):
    """The run's folder already holds a run, which must never be written over."""


class DataError(HyperlabError):
    """A data set could not be found, read or downloaded."""


def first_line(error: BaseException) -> str:
    """An error's message in one line: its first (a Hydra or OmegaConf error goes on with details)."""
    return (str(getattr(error, "msg", None) or error).strip().splitlines() or [""])[0]


def last_line(error: BaseException) -> str:
    """An error's message in one line: its last (a Lightning or torch error ends with what went wrong)."""
    return (str(error).strip().splitlines() or [""])[-1]


class Interrupted(Exception):
    """Ctrl-C or SIGTERM asked the run to stop."""


def exit_for(error: BaseException) -> NoReturn:
    """The one way a command ends on an error that is not a bug: one line, and status 130 for an interruption (Ctrl-C
    or SIGTERM), 2 for a mistake the user can fix."""
    if isinstance(error, (Interrupted, KeyboardInterrupt)):
        print(f"interrupted: {error or 'stopped by SIGINT'}", file=sys.stderr)
        raise SystemExit(130)
    print(f"error: {error}", file=sys.stderr)
    raise SystemExit(2)
