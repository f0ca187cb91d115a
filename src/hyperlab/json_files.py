"""Files written whole or not at all, and strict JSON: every file hyperlab rewrites (a run's metrics.json, a sweep's
table, ...) is written atomically (`write_atomically`: a kill or a full disk leaves the old file or the new one);
every JSON file is strict JSON (`json_text`: a NaN is written as null, and listed), read back as it was written
(`read_json`); a write that fails for want of room says so (`NO_ROOM`, `reason_of`).
"""

import errno
import json
import math
from contextlib import suppress
from pathlib import Path
from typing import Any

from hyperlab.errors import DataError

NO_ROOM = (errno.ENOSPC, errno.EDQUOT)  # a full disk, or a user's quota spent


def reason_of(error: OSError) -> str:
    """`ENOSPC: No space left on device`."""
    code = errno.errorcode.get(error.errno or 0)
    return f"{code}: {error.strerror}" if code and error.strerror else str(error)


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it: readers see the old file or the new one, and
    a write that fails (a full disk) leaves no temporary file behind."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_text(text)
        temporary.replace(path)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------------------------------------ strict JSON
NON_FINITE = "non_finite"  # a JSON file's list of the numbers JSON cannot hold, written as null: where, and what


def json_text(data: dict[str, Any], indent: int | None = None) -> str:
    """`data` as strict JSON: each NaN or infinite number becomes null, and `non_finite` lists where it was and what
    it was (`{"at": ["metrics", "val/loss"], "was": "NaN"}`), which `read_json` puts back."""
    found: list[dict[str, Any]] = []
    plain = finite(data, [], found)
    if found:
        plain[NON_FINITE] = found
    return json.dumps(plain, indent=indent, allow_nan=False) + "\n"


def finite(value: Any, at: list[Any], found: list[dict[str, Any]]) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        found.append({"at": at, "was": json.dumps(value)})  # NaN, Infinity or -Infinity
        return None
    if isinstance(value, dict):
        return {key: finite(item, [*at, key], found) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item, [*at, index], found) for index, item in enumerate(value)]
    return value


def read_json(path: Path) -> dict[str, Any]:
    """A JSON file hyperlab wrote (an object), with the numbers `json_text` wrote as null put back; a file that is
    not one is refused."""
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as error:  # (JSONDecodeError and UnicodeDecodeError are ValueErrors)
        raise DataError(f"{path} is refused: it is not JSON ({error})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path} is refused: expected a JSON object, not {type(data).__name__}")
    listed = data.pop(NON_FINITE, None)
    for entry in listed if isinstance(listed, list) else []:
        with suppress(LookupError, TypeError, ValueError):  # (an entry that does not fit the file: left as null)
            put_back_number(data, entry["at"], float(entry["was"]))
    return data


def put_back_number(data: dict[str, Any], at: list[Any], number: float) -> None:
    """The null at `at` (keys and list indices) becomes `number`, a non-finite one."""
    node: Any = data
    for key in at[:-1]:
        node = node[index_in(node, key)]
    last = index_in(node, at[-1])
    if node[last] is None and not math.isfinite(number):
        node[last] = number


def index_in(node: Any, key: Any) -> Any:
    return key if isinstance(node, list) else str(key)  # (JSON's keys are text)
