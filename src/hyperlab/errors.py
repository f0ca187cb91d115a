"""Errors a user can fix, and interruptions: each reported as one line, without a traceback (`exit_for`)."""

import sys
from types import FrameType
from typing import NoReturn


class HyperlabError(Exception):
    """Base of the errors that the entry points report in one line and exit with status 2."""


class ConfigError(HyperlabError):
    """A config key has a value that is out of range, of the wrong kind, or does not fit the rest."""


class RunFolderInUse(ConfigError):
    """The run's folder already holds a run, which must never be written over."""


class DataError(HyperlabError):
    """A data set could not be found, read or downloaded."""


class NoRoomLeft(HyperlabError):
    """The disk has no room left for what a run writes (ENOSPC, EDQUOT): no bug, so one line; its record says the
    rest."""


class RecordNotWritten(HyperlabError):
    """A run's record (metrics.json) could not be written, not even in brief (a full disk): the run ends in one line
    saying so, and an earlier attempt's record is put back in place."""


def first_line(error: BaseException) -> str:
    """An error's message in one line: its first (a Hydra or OmegaConf error goes on with details)."""
    return (str(getattr(error, "msg", None) or error).strip().splitlines() or [""])[0]


def last_line(error: BaseException) -> str:
    """An error's message in one line: its last (a Lightning or torch error ends with what went wrong)."""
    return (str(error).strip().splitlines() or [""])[-1]


class Interrupted(Exception):
    """Ctrl-C or SIGTERM asked the run to stop."""


# the SIGINTs the running command received (`note_interruption`, its handler while hyperlab.cli's entry point runs)
INTERRUPTIONS: list[int] = []


def note_interruption(signum: int, frame: FrameType | None) -> None:
    """Python's own handler (a KeyboardInterrupt), which also notes the signal: third-party code may swallow the
    KeyboardInterrupt while its modules load, or turn it into another error, and the command still ends as
    interrupted."""
    INTERRUPTIONS.append(signum)
    raise KeyboardInterrupt


def exit_for(error: BaseException) -> NoReturn:
    """The one way a command ends on an error that is not a bug: one line, and status 130 for an interruption (Ctrl-C
    or SIGTERM, or any error after Ctrl-C), 2 for a mistake the user can fix."""
    if isinstance(error, (Interrupted, KeyboardInterrupt)) or INTERRUPTIONS:
        reason = str(error) if isinstance(error, Interrupted) else ""  # (another error: what Ctrl-C left behind)
        print(f"interrupted: {reason or 'stopped by SIGINT'}", file=sys.stderr)
        raise SystemExit(130)
    print(f"error: {error}", file=sys.stderr)
    raise SystemExit(2)
