"""Errors a user can fix: reported as one line that names the culprit, without a traceback."""


class HyperlabError(Exception):
    """Base of the errors that the entry points report in one line and exit with status 2."""


class ConfigError(HyperlabError):
    """A config key has a value that is out of range, of the wrong kind, or does not fit the rest."""


class RunFolderInUse(ConfigError):
    """The run's folder already holds a run, which must never be written over."""


class DataError(HyperlabError):
    """A data set could not be found, read or downloaded."""
