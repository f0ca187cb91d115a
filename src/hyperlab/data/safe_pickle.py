"""Reading a pickle file that must hold data only (CIFAR-10's batches) without letting it run code.

`pickle.load` calls whatever functions a file names: a crafted "data_batch_1" could run any command. This unpickler
builds containers, text, bytes and numbers, and of all the functions and classes a pickle can name, exactly those
numpy's arrays are rebuilt with (its `_reconstruct`, `ndarray` and `dtype`); any other name is refused before
anything is called. What it returns must still be checked by the caller (shapes, types, ranges).
"""

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from hyperlab.errors import DataError

# numpy's array reconstruction, under the module names numpy 1 (`numpy.core`) and numpy 2 (`numpy._core`) pickle it
# with; the function itself is taken from numpy's own pickling of an array, whatever this numpy calls its module
RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]
ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class DataOnlyUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global but numpy's array reconstruction (`ALLOWED`)."""

    def find_class(self, module: str, name: str) -> Any:
        found = ALLOWED.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a data file has no use for")
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("it refers to persistent objects, which a data file has no use for")


def load_data_pickle(path: Path, encoding: str = "latin1") -> Any:
    """The data a pickle file holds (read as torchvision reads CIFAR's: `encoding="latin1"` for Python 2's text), or a
    DataError naming the file: one that names a function or class beyond numpy's arrays is refused, nothing in it
    run. Object arrays are refused too (their items would be whatever the file says)."""
    try:
        content = path.read_bytes()
    except OSError as error:
        raise DataError(f"cannot read {path}: {error.strerror}") from None
    try:
        data = DataOnlyUnpickler(io.BytesIO(content), encoding=encoding).load()
    except pickle.UnpicklingError as error:
        raise DataError(f"{path} is refused: {error}: a crafted pickle could run code, nothing in it was run") from None
    except Exception as error:  # noqa: BLE001 - a truncated or foreign file fails in many ways
        reason = f"{type(error).__name__}: {str(error)[:120]}"
        raise DataError(
            f"{path} is not a readable pickle of data (truncated, or another kind of file): {reason}"
        ) from None
    refuse_object_arrays(data, path)
    return data


def refuse_object_arrays(value: Any, path: Path) -> None:
    """Refuse an array of Python objects anywhere in `value` (the numbers a data file holds have a numeric dtype)."""
    if isinstance(value, np.ndarray) and value.dtype.hasobject:
        raise DataError(f"{path} is refused: it holds an array of Python objects, not of numbers")
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()
    for item in items:
        refuse_object_arrays(item, path)
