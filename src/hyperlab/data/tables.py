"""Tables: any CSV or Parquet file (pandas reads it), and scikit-learn's bundled ones (the intro course's animals and
salary tasks).

A table's columns are features and one target. Numeric columns are standardised (missing values take the training
median), other columns are categories, one-hot or label encoded (`data.encoding`; scikit-learn's transformers,
fitted on the training rows only and kept as plain values: `preprocessing.py`); rows without a target are dropped.
The target makes the task: classification for text or few distinct numbers, else regression, whose target is
standardised for training (the task reports its metrics back in the target's own units).

A table has at most `MAX_COLUMNS` columns (each column's preprocessing is fitted on its own: about 5 ms a
column), its header row at most `HEADER_CHARACTERS` characters (hyperlab.data.table_files reads the files); a class
(a value of a classification's target) is named in at most `CLASS_NAME_CHARACTERS` characters. A Parquet file's
decimal columns are numbers (floats), and a column of nulls alone is missing numbers, as a CSV file's empty column
is.

The table ends as one float32 tensor whose rows are ordered train, val, test: each split is a slice of it, not a
copy (docs/benchmarks.md, "Big tables": a 1 M-row, 20-column file loads and preprocesses in 2 s).
"""

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn import datasets

from hyperlab.data.base import Split, TensorDataModule, stratified_split
from hyperlab.data.messages import quoted, quoted_list, shortened, unreadable_path
from hyperlab.data.options import (
    CLASS_NAME_CHARACTERS,
    SKLEARN_TABLES,
    CSVDataModuleOptions,
    SklearnTableDataModuleOptions,
    TableDataModuleOptions,
)
from hyperlab.data.preprocessing import Preprocessing, as_categories, class_indices
from hyperlab.data.table_files import PARQUET_SUFFIXES, free_unused_memory, read_csv, read_parquet
from hyperlab.errors import ConfigError, DataError
from hyperlab.options import separator, sorted_values

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
MIN_ROWS = 10  # fewer rows cannot make three splits
REGRESSION_MIN_VALUES = 10  # a numeric target with more distinct values than this is a quantity, not a class
MOSTLY_NUMBERS = 0.9  # a column of numbers but for a few texts (under 10% of its filled cells) has junk in it


class TableDataModule(TensorDataModule):
    """Base of the table datamodules: a subclass reads its features and target in `read_table`."""

    options = TableDataModuleOptions

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.preprocessing: Preprocessing | None = None  # fitted in load(), or given by load_state_dict()
        self.dropped_rows = 0

    def read_table(self) -> tuple[pd.DataFrame, pd.Series]:
        """The feature columns (numbers, or texts as a pandas categorical) and the target, one value per row."""
        raise NotImplementedError

    def load(self) -> dict[str, Split]:
        features, target = self.read_table()
        rows = np.flatnonzero(target.notna().to_numpy())  # the rows with a target, in the table's order
        self.dropped_rows = len(target) - len(rows)
        if self.dropped_rows:
            log.info(f"dropped {self.dropped_rows} row(s) without a target value")
        if len(rows) < MIN_ROWS:
            raise DataError(f"{len(rows)} rows with a target: too few to split into train, validation and test "
                            f"(at least {MIN_ROWS})")  # fmt: skip
        target = target.iloc[rows]
        index = self.split_and_fit(features, target, rows)
        state = self.preprocessing.state
        self.kind = state["kind"]
        self.class_names = state["classes"] or None
        self.target_mean, self.target_std = state.get("target_mean", 0.0), state.get("target_std", 1.0)
        sizes = [len(index[split]) for split in SPLITS]
        order = np.concatenate([index[split] for split in SPLITS])  # positions among the rows kept, by split
        y = self.preprocessing.encode_target(target.iloc[order])
        rows, index, order, target = rows[order], {}, None, None  # (what is left to fill the tensor with: features)
        free_unused_memory()  # what splitting and fitting freed, before the tensor is filled
        x = self.preprocessing.transform(features, rows)  # one tensor, rows by split: each split a slice
        what = f"{len(state['classes'])} classes {state['classes'][:10]}" if state["classes"] else "regression"
        log.info(f"{len(rows)} rows (train/val/test {'/'.join(map(str, sizes))}), {len(state['columns'])} columns -> "
                 f"{x.shape[1]} inputs; {what}")  # fmt: skip
        starts = np.cumsum([0, *sizes])
        return {split: (x[a:b], y[a:b]) for split, a, b in zip(SPLITS, starts[:-1], starts[1:], strict=True)}

    def split_and_fit(self, features: pd.DataFrame, target: pd.Series, rows: np.ndarray) -> dict[str, np.ndarray]:
        """The positions in `rows` of each split's rows; the preprocessing fitted on the training rows, unless it was
        given (by `load_state_dict`)."""
        if self.preprocessing is not None:
            labels = self.preprocessing.encode_target(target) if self.preprocessing.state["classes"] else None
            return self.split(labels, len(rows))
        kind = self.task if self.task != "auto" else infer_kind(target)
        classes = sorted_values(set(as_categories(target).cat.categories)) if kind == "classification" else []
        if kind == "classification" and len(classes) < 2:
            raise DataError(f"the target has a single class ({quoted_list(classes)}): there is nothing to tell apart")
        index = self.split(class_indices(target, classes) if classes else None, len(rows))
        self.preprocessing = Preprocessing.fit(
            features, rows[index["train"]], target.iloc[index["train"]], kind, classes, self.encoding,
            self.max_categories,
        )  # fmt: skip
        return index

    def split(self, labels: torch.Tensor | None, num_rows: int) -> dict[str, np.ndarray]:
        """The positions of each split's rows: the same whether the preprocessing is fitted or given (a checkpoint's
        run, a fold's included, is evaluated on its own test rows), the rows it is fitted on being `train`'s."""
        index = stratified_split(
            labels, num_rows, self.val_fraction, self.test_fraction, self.seed, self.folds, self.fold
        )
        return {split: i.numpy() for split, i in index.items()}

    def state_dict(self) -> dict[str, Any]:
        return dict(self.preprocessing.state) if self.preprocessing else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict:
            self.preprocessing = Preprocessing(dict(state_dict))


def infer_kind(target: pd.Series) -> str:
    if pd.api.types.is_numeric_dtype(target) and target.nunique() > REGRESSION_MIN_VALUES:
        return "regression"
    return "classification"


class CSVDataModule(TableDataModule):
    """Any CSV or Parquet file with a header row: `target` names the column to predict, `drop` the columns to
    ignore; `sep`, `file_encoding`, `na_values` and `decimal` say how to read a CSV file (pandas' `sep`,
    `encoding`, `na_values`, `decimal`)."""

    options = CSVDataModuleOptions

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.path, self.drop, self.na_values = Path(self.path), list(self.drop), list(self.na_values)
        self.sep = separator(self.sep)

    def read_table(self) -> tuple[pd.DataFrame, pd.Series]:
        table = read_table(self.path, self.sep, self.file_encoding, self.na_values, self.decimal)
        if self.target not in table:
            raise DataError(f"data.target={quoted(self.target)} is not a column of {self.path}: its columns are "
                            f"{quoted_list(table.columns)}")  # fmt: skip
        unknown = [name for name in self.drop if name not in table]
        if unknown:
            raise DataError(f"data.drop names columns {self.path} does not have: {quoted_list(unknown)}; its columns: "
                            f"{quoted_list(table.columns)}")  # fmt: skip
        target = settled(table.pop(self.target), self.target, self.path)
        check_class_names(target, self.target, self.path)
        features = table.drop(columns=[name for name in self.drop if name != self.target])
        if features.columns.empty:
            raise DataError(f"{self.path}: no feature column is left besides the target")
        features = settle(features, self.path)
        state = self.preprocessing.state if self.preprocessing else None
        check_values(features, self.path, state)  # (the target's: by the task, which may take texts as classes)
        return features, target


def read_table(
    path: Path, sep: str | None, file_encoding: str, na_values: list[str], decimal: str = "."
) -> pd.DataFrame:
    """The table in a CSV file (read by pandas; `sep=None`: sniffed among , ; tab |) or a Parquet file (by its
    extension), text columns held as pandas categoricals (a tenth the memory); `settle` makes every column numbers
    or categories."""
    if not path.is_file():
        why = unreadable_path(path)  # (a symlink loop: resolve() would raise)
        raise DataError(f"no table file at {path.absolute()}{f' ({why})' if why else ''} (data.path: a .csv or "
                        ".parquet file)")  # fmt: skip
    if path.suffix.lower() in PARQUET_SUFFIXES:
        table = read_parquet(path)
    else:
        table = read_csv(path, sep, file_encoding, na_values, decimal)
    free_unused_memory()
    if len(table.columns) and table.empty:
        raise DataError(f"{path} has a header but no rows")
    return table


def settle(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The table with each column numbers or categories (`settled`)."""
    return pd.DataFrame({name: settled(table[name], name, path) for name in table.columns}, copy=False)


def settled(values: pd.Series, name: str, path: Path) -> pd.Series:
    """A column as numbers, or as categories (a pandas categorical): texts, and True/False (as the texts "True" and
    "False", a category each, as before pandas read them); a DataError for values that are neither (lists)."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values
    try:
        return values.astype("category")
    except TypeError:  # unhashable: a Parquet list or struct
        raise DataError(f"{path}: column {quoted(name)} holds {type(values.dropna().iloc[0]).__name__}s, not "
                        f"numbers or texts: drop it with data.drop=[{shortened(name)}]") from None  # fmt: skip


def check_values(table: pd.DataFrame, path: Path, state: dict[str, Any] | None = None) -> None:
    """Refuse the infinite numbers and the junk (a few texts among numbers: a typo, a spreadsheet's error) of the
    feature columns of `table`, naming the column and the row; with a fitted preprocessing's `state`, of the columns
    it reads as numbers only (a column of categories may hold numbers in another file)."""
    numbers = [name for name, spec in (state or {}).get("columns", {}).items() if spec["kind"] == "number"]
    for name in numbers if state else table.columns:
        if name not in table:
            continue  # (refused by the preprocessing, which names it)
        values = table[name]
        if isinstance(values.dtype, pd.CategoricalDtype):
            check_not_junk(values, name, path)
            continue
        infinite = np.flatnonzero(np.isinf(values.to_numpy(dtype=float, na_value=np.nan)))
        if len(infinite):
            row = int(infinite[0])
            raise DataError(f"{path}: column {quoted(name)} holds {values.iloc[row]} in row {row + 1} (after the "
                            "header): infinite values are not allowed (leave the cell empty for a missing value, or "
                            "list its text in data.na_values)")  # fmt: skip


def check_not_junk(values: pd.Series, name: str, path: Path) -> None:
    """A text column is categories, unless it holds numbers but for a few cells (under 10% of its filled ones):
    then those few are junk, refused by the first one's row."""
    if values.cat.categories.empty:  # every cell missing: no junk
        return
    texts = pd.Series(values.cat.categories.astype(str))
    numbers = pd.to_numeric(texts, errors="coerce").notna().to_numpy()
    codes = values.cat.codes.to_numpy()
    present = codes >= 0
    comma_numbers = pd.to_numeric(texts.str.replace(",", ".", regex=False), errors="coerce").notna().to_numpy()
    if present.any() and (comma_numbers[codes] & present).sum() / present.sum() >= MOSTLY_NUMBERS > (
        (numbers[codes] & present).sum() / present.sum()
    ):
        row = int(np.flatnonzero(present & ~numbers[codes])[0])
        raise DataError(f"{path}: column {quoted(name)} holds numbers with decimal commas ({quoted(values.iloc[row])} "
                        f"in row {row + 1} after the header): read them with data.decimal=','")  # fmt: skip
    is_number = numbers[codes] & present
    if present.any() and MOSTLY_NUMBERS <= is_number.sum() / present.sum() < 1:
        row = int(np.flatnonzero(present & ~is_number)[0])
        text = values.iloc[row]
        raise DataError(f"{path}: column {quoted(name)} holds numbers but {quoted(text)} in row {row + 1} (after the "
                        f"header) and {int((present & ~is_number).sum()) - 1} other cell(s): if it means a missing "
                        f"value, list it in data.na_values (e.g. data.na_values=[{shortened(text)}]); else fix the "
                        f"file or data.drop=[{shortened(name)}]")  # fmt: skip


def check_class_names(target: pd.Series, name: str, path: Path) -> None:
    """Refuse a target whose texts are longer than a class name may be (`CLASS_NAME_CHARACTERS`): every figure and
    checkpoint of the run would carry them (a 50 MB one crashed drawing), naming the first one's row."""
    if not isinstance(target.dtype, pd.CategoricalDtype):
        return
    lengths = target.cat.categories.astype(str).str.len().to_numpy()
    if not len(lengths) or lengths.max() <= CLASS_NAME_CHARACTERS:
        return
    code = int(np.argmax(lengths > CLASS_NAME_CHARACTERS))
    row = int(np.argmax(target.cat.codes.to_numpy() == code))
    raise DataError(
        f"{path}: column {quoted(name)} (the target) holds {quoted(target.cat.categories[code])} in row "
        f"{row + 1} (after the header): a class name is at most {CLASS_NAME_CHARACTERS} characters"
    )


class SklearnTableDataModule(TableDataModule):
    """scikit-learn's bundled tables, no download: iris and wine (3 classes), breast_cancer (2), diabetes
    (regression)."""

    options = SklearnTableDataModuleOptions  # (its fixed_options: every column is a number, no categories)

    def __init__(self, **options: Any) -> None:
        super().__init__(**self.options.fixed_options, **options)

    def read_table(self) -> tuple[pd.DataFrame, pd.Series]:
        if self.name not in SKLEARN_TABLES:  # (a loader is called by name only from this closed list)
            raise ConfigError(f"data.name={self.name} is not allowed: expected one of {list(SKLEARN_TABLES)}")
        bunch = getattr(datasets, f"load_{self.name}")(as_frame=True)
        names = getattr(bunch, "target_names", None)
        target = pd.Series(np.asarray(names)[bunch.target] if names is not None else bunch.target)
        return bunch.data.reset_index(drop=True), target
