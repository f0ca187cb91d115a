"""What a refusal quotes of a file: its values shortened to a few dozen characters, each on one line (a file's cell
or name can hold 50 MB, or a line break), and why a path named on the command line cannot be read."""

from collections.abc import Iterable
from pathlib import Path

QUOTED_CHARACTERS = 80  # the most of a value a message quotes
QUOTED_VALUES = 10  # the most values of a list a message quotes


def shortened(value: object) -> str:
    """A value's text, its first `QUOTED_CHARACTERS` characters and its length if longer, line breaks escaped."""
    text = str(value)
    if len(text) <= QUOTED_CHARACTERS:
        return text if text.isprintable() else repr(text)[1:-1]
    return f"{shortened(text[:QUOTED_CHARACTERS])}... ({len(text):,} characters)"


def quoted(value: object) -> str:
    """A value in quotes, as `{value!r}` writes a text, `shortened`."""
    text = str(value)
    if len(text) <= QUOTED_CHARACTERS:
        return repr(text)
    return f"{text[:QUOTED_CHARACTERS]!r}... ({len(text):,} characters)"


def quoted_list(values: Iterable[object]) -> str:
    """A list of values as `[...]`, each `quoted`, the first `QUOTED_VALUES` of them and how many there are."""
    values = list(values)
    shown = ", ".join(quoted(value) for value in values[:QUOTED_VALUES])
    return f"[{shown}, ... ({len(values):,} in all)]" if len(values) > QUOTED_VALUES else f"[{shown}]"


def unreadable_path(path: Path) -> str | None:
    """Why `path` cannot be looked at (a symlink loop, no permission; not when it does not exist): None if it can."""
    try:
        path.stat()
    except FileNotFoundError:
        return None
    except OSError as error:
        return error.strerror or type(error).__name__
    return None
