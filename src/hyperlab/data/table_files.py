"""Reading a table file (hyperlab.data.tables.read_table): a CSV file, its separator sniffed among , ; tab | and
its header row checked before pandas reads it (at most `MAX_COLUMNS` names in at most `HEADER_CHARACTERS`
characters, no name twice), its text columns read as categories (a tenth the memory); a Parquet file, its decimal
columns as floats; and the memory the readers freed given back before the table's tensor is filled."""

import contextlib
import csv
import ctypes
import io
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow
import pyarrow.parquet as parquet

from hyperlab.data.messages import quoted_list, shortened
from hyperlab.errors import DataError

log = logging.getLogger(__name__)

SAMPLE_ROWS = 1000  # rows read first to find the text columns, which are then read as categories (a tenth the memory)
SAMPLE_CHARACTERS = 65_536  # text read to sniff the separator
HEADER_CHARACTERS = 4_194_304  # the longest header row read (10,000 names of 400 characters)
MAX_COLUMNS = 10_000  # a table of more columns is refused: each column's preprocessing is fitted on its own (~5 ms)
SEPARATORS = {",": "commas (',')", ";": "semicolons (';')", "\t": "tabs", "|": "bars ('|')"}
PARQUET_SUFFIXES = (".parquet", ".pq")


def read_parquet(path: Path) -> pd.DataFrame:
    """A Parquet file's table, its text columns read as dictionaries (pandas categoricals), each column handed
    from pyarrow to pandas and freed in turn (`self_destruct`): 540 MB -> 300 MB at the peak for 1 M rows x 20."""
    try:
        schema = parquet.read_schema(path)
        check_width(len(schema), path)
        texts = [field.name for field in schema if pyarrow.types.is_string(field.type)
                 or pyarrow.types.is_large_string(field.type)]  # fmt: skip
        arrow = as_numbers(parquet.read_table(path, read_dictionary=texts))
        return arrow.to_pandas(self_destruct=True, split_blocks=True)
    except (pyarrow.ArrowException, OSError) as error:
        raise DataError(f"{path} is not a readable Parquet file: {first_line_of(error)}") from None


def as_numbers(arrow: pyarrow.Table) -> pyarrow.Table:
    """The table with its decimal columns as floats, and its columns of nulls alone (no type) as missing numbers, as a
    CSV file's are read: pandas would hold the first as Python Decimals (taken for texts), the second as Nones."""
    for i, field in enumerate(arrow.schema):
        if pyarrow.types.is_decimal(field.type) or pyarrow.types.is_null(field.type):
            arrow = arrow.set_column(i, field.name, arrow.column(i).cast(pyarrow.float64()))
    return arrow


def first_line_of(error: BaseException) -> str:
    """An error's first line, `shortened` (a parser's may quote the file)."""
    return shortened((str(error).strip().splitlines() or [type(error).__name__])[0])


def read_csv(path: Path, sep: str | None, file_encoding: str, na_values: list[str], decimal: str) -> pd.DataFrame:
    try:
        with path.open(encoding=file_encoding, newline="") as handle:
            sample = handle.read(SAMPLE_CHARACTERS).removeprefix("\ufeff")
        if not sample.strip():
            raise DataError(f"{path} is empty: a table needs a header row and data rows")
        separator = sep or sniff_separator(sample)
        check_header(read_header(path, file_encoding, separator), path)
        how = "sniffed; data.sep sets it" if sep is None else "data.sep"
        log.info(f"reading {path.name}: columns separated by {SEPARATORS.get(separator, repr(separator))} ({how})")
        options = {"sep": separator, "encoding": file_encoding, "na_values": na_values, "decimal": decimal,
                   "skipinitialspace": True}  # fmt: skip
        head = pd.read_csv(path, nrows=SAMPLE_ROWS, **options)
        texts = [name for name in head if not pd.api.types.is_numeric_dtype(head[name]) and head[name].notna().any()]
        return pd.read_csv(path, dtype=dict.fromkeys(texts, "category"), **options)
    except UnicodeDecodeError as error:
        raise DataError(f"{path} is not {file_encoding} text ({error.reason} at byte {error.start}): give its "
                        "encoding, e.g. data.file_encoding=latin-1") from None  # fmt: skip
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error) as error:
        raise DataError(f"{path} is not a readable CSV file: {first_line_of(error)}") from None


def read_header(path: Path, file_encoding: str, separator: str) -> list[str]:
    """The header row's names, the row read whole: the sample the separator is sniffed from may end within it, and
    a name cut short there would be taken for another (`c100000` for `c10`)."""
    with path.open(encoding=file_encoding, newline="") as handle:
        return next(csv.reader(header_lines(handle, path), delimiter=separator), [])


def header_lines(handle: io.TextIOBase, path: Path) -> Iterator[str]:
    """A file's lines from its first, as many as the CSV reader asks for (the header row's), up to
    `HEADER_CHARACTERS` in all: a longer header is refused, not read into memory."""
    read = 0
    while line := handle.readline(HEADER_CHARACTERS + 1 - read):
        read += len(line)
        if read > HEADER_CHARACTERS:
            raise DataError(f"{path} is refused: its header row is longer than {HEADER_CHARACTERS:,} characters "
                            f"(a table has at most {MAX_COLUMNS:,} columns)")  # fmt: skip
        yield line.removeprefix("\ufeff") if read == len(line) else line  # (a BOM starts the first line only)


def check_header(header: list[str], path: Path) -> None:
    """Refuse a header of more than `MAX_COLUMNS` names, or one naming a column twice (pandas would rename one)."""
    check_width(len(header), path)
    repeated = sorted(name for name, count in Counter(header).items() if count > 1 and name.strip())  # ('': "Unnamed")
    if repeated:
        raise DataError(f"{path}: the header names a column more than once: {quoted_list(repeated)}")


def check_width(columns: int, path: Path) -> None:
    if columns > MAX_COLUMNS:
        raise DataError(f"{path} is refused: it has {columns:,} columns, and a table has at most {MAX_COLUMNS:,} "
                        "(each column's preprocessing is fitted on its own)")  # fmt: skip


def sniff_separator(sample: str) -> str:
    """The separator of a CSV text among , ; tab |: the one csv.Sniffer finds, or the one that splits the header
    line (outside quotes) into the most columns; a comma if none does."""
    try:
        return csv.Sniffer().sniff(sample, delimiters="".join(SEPARATORS)).delimiter
    except csv.Error:  # one line, or no separator that is consistent across the lines
        first = sample.splitlines()[0]
        counts = {separator: len(next(csv.reader([first], delimiter=separator))) for separator in SEPARATORS}
        best = max(counts, key=lambda separator: counts[separator])
        return best if counts[best] > 1 else ","


def free_unused_memory() -> None:
    """Give freed memory back to the system: glibc keeps what the CSV parser, the split and the fit freed (100 MB
    and 70 MB for a 1 M-row file), pyarrow's pool what reading Parquet freed (120 MB), which would add to the peak
    while the table's tensor is filled."""
    pyarrow.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)
