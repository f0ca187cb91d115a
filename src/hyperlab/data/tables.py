"""Tables: any CSV file, and scikit-learn's bundled ones (the intro course's animals and salary tasks).

A table's columns are features and one target. Numeric columns are standardised (missing values take the
training median), other columns are categories, one-hot or label encoded; rows without a target are dropped. The
target makes the task: classification for text or few distinct numbers, else regression, whose target is
standardised for training (the task reports its metrics back in the target's own units).

All of it is fitted on the training split only, and kept as plain numbers and strings (`Preprocessing`): the
datamodule's `state_dict` goes into every checkpoint and `preprocessing.json`, so evaluation applies exactly what
training fitted. (scikit-learn's fitted scalers and encoders could only be kept by pickling them.)
"""

import csv
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn import datasets

from hyperlab.data.base import Split, TensorDataModule, split_indices
from hyperlab.errors import DataError
from hyperlab.options import Options, sorted_values

log = logging.getLogger(__name__)

MISSING = {"", "na", "nan", "n/a", "null", "none", "?"}
MIN_ROWS = 10  # fewer rows cannot make three splits
REGRESSION_MIN_VALUES = 10  # a numeric target with more distinct values than this is a quantity, not a class
SKLEARN_TABLES = {
    "iris": datasets.load_iris,
    "wine": datasets.load_wine,
    "breast_cancer": datasets.load_breast_cancer,
    "diabetes": datasets.load_diabetes,
}


OTHER_SEPARATORS = {";": "semicolons (';')", "\t": "tabs", "|": "bars ('|')"}


def is_missing(values: np.ndarray) -> np.ndarray:
    return np.array([str(v).strip().lower() in MISSING for v in values], dtype=bool)


def as_numbers(values: np.ndarray) -> np.ndarray | None:
    """The column as floats (NaN where missing), or None if a present value is not a number."""
    try:
        return np.array([np.nan if str(v).strip().lower() in MISSING else float(v) for v in values], dtype=float)
    except ValueError:
        return None


def is_number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def is_texts(values: Any) -> bool:
    return isinstance(values, list) and all(isinstance(v, str) for v in values)


def state_problem(state: Any) -> str | None:
    """What is wrong with a preprocessing state (None: it has the shape `Preprocessing.fit` writes)."""
    if not isinstance(state, dict) or not isinstance(state.get("columns"), dict) or not state["columns"]:
        return "no columns"
    if state.get("encoding") not in ("onehot", "label") or state.get("kind") not in ("classification", "regression"):
        return f"encoding {state.get('encoding')!r} / kind {state.get('kind')!r}"
    if not is_texts(state.get("classes")):
        return "classes must be texts"
    if state["kind"] == "regression" and not (
        is_number(state.get("target_mean")) and is_number(state.get("target_std"))
    ):
        return "the target's mean and spread must be numbers"
    for name, spec in state["columns"].items():
        if not isinstance(spec, dict):
            return f"column {name!r}"
        numbers = ["median", "mean", "std"] if spec.get("kind") == "number" else []
        numbers += ["mean", "std"] if spec.get("kind") == "category" and state["encoding"] == "label" else []
        if not isinstance(name, str) or spec.get("kind") not in ("number", "category"):
            return f"column {name!r}"
        if spec["kind"] == "category" and not is_texts(spec.get("categories")):
            return f"column {name!r}: categories must be texts"
        if not all(is_number(spec.get(key)) for key in numbers) or ("std" in numbers and spec["std"] <= 0):
            return f"column {name!r}: {', '.join(numbers)} must be numbers (std > 0)"
    return None


class Preprocessing:
    """What is fitted on the training rows, as plain values: per feature column its kind and statistics, the
    classes of a classification target or the mean and spread of a regression one."""

    def __init__(self, state: dict[str, Any]) -> None:
        problem = state_problem(state)
        if problem:  # a state read from a file: plain values of the shape `fit` writes, or refused
            raise DataError(f"the table preprocessing stored with the model is not valid: {problem}")
        self.state = state

    @classmethod
    def fit(
        cls,
        features: dict[str, np.ndarray],
        numeric: set[str],
        target: np.ndarray,
        kind: str,
        classes: list[str],
        encoding: str,
        max_categories: int,
    ) -> "Preprocessing":
        """Fit on the training rows (`features`, `target`); `numeric` names the columns that hold numbers in every
        row of the table (whether a column is text is not a statistic: a split must not decide it)."""
        columns: dict[str, dict[str, Any]] = {}
        for name, values in features.items():
            if name in numeric:
                numbers = as_numbers(values)
                present = numbers[~np.isnan(numbers)]
                median = float(np.median(present)) if len(present) else 0.0
                filled = np.where(np.isnan(numbers), median, numbers)
                columns[name] = {"kind": "number", "median": median, "mean": float(filled.mean()),
                                 "std": float(filled.std()) or 1.0}  # fmt: skip
                continue
            categories = sorted_values({str(v).strip() for v in values})
            if len(categories) > max_categories or (len(categories) > 10 and len(categories) > 0.5 * len(values)):
                raise DataError(
                    f"column {name!r} has {len(categories)} different texts in {len(values)} training rows: not "
                    f"categories (an id or a name?); drop it with data.drop=[{name}] (or raise data.max_categories)"
                )
            columns[name] = {"kind": "category", "categories": categories}
            if encoding == "label":  # the category's index, standardised like a number
                codes = np.arange(len(categories), dtype=float)[[categories.index(str(v).strip()) for v in values]]
                columns[name].update(mean=float(codes.mean()), std=float(codes.std()) or 1.0)
        state: dict[str, Any] = {"columns": columns, "encoding": encoding, "kind": kind, "classes": classes}
        if kind == "regression":
            y = target_numbers(target)
            state.update(target_mean=float(y.mean()), target_std=float(y.std()) or 1.0)
        return cls(state)

    def transform(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """The feature matrix the network gets (float32), one or more columns per feature column."""
        blocks = []
        for name, spec in self.state["columns"].items():
            if name not in features:
                raise DataError(f"the table has no column {name!r}, which the model was trained with")
            values = features[name]
            if spec["kind"] == "number":
                numbers = as_numbers(values)
                if numbers is None:
                    raise DataError(f"column {name!r} was numeric in training and has text here")
                filled = np.where(np.isnan(numbers), spec["median"], numbers)
                blocks.append(((filled - spec["mean"]) / spec["std"])[:, None])
                continue
            index = {category: i for i, category in enumerate(spec["categories"])}
            codes = np.array([index.get(str(v).strip(), -1) for v in values])  # -1: a category never seen
            unseen = sorted({str(v).strip() for v, code in zip(values, codes, strict=True) if code < 0})
            if unseen:
                log.warning(f"column {name!r}: {unseen[:5]} never seen in training (taken as no known category)")
            if self.state["encoding"] == "label":
                known = np.where(codes < 0, spec["mean"], codes)  # unseen: the average code, 0 once standardised
                blocks.append(((known - spec["mean"]) / spec["std"])[:, None])
            else:  # unseen: no column set
                blocks.append((codes[:, None] == np.arange(len(spec["categories"]))[None, :]).astype(float))
        return np.concatenate(blocks, axis=1).astype(np.float32)

    def encode_target(self, target: np.ndarray) -> torch.Tensor:
        if self.state["kind"] == "classification":
            index = {name: i for i, name in enumerate(self.state["classes"])}
            unknown = sorted({str(v).strip() for v in target} - index.keys())
            if unknown:
                raise DataError(f"the target has classes the model was not trained on: {unknown[:5]}")
            return torch.tensor([index[str(v).strip()] for v in target], dtype=torch.long)
        y = (target_numbers(target) - self.state["target_mean"]) / self.state["target_std"]
        return torch.tensor(y, dtype=torch.float32).unsqueeze(1)


class TableDataModule(TensorDataModule):
    """Base of the table datamodules: a subclass reads its features and target in `read_table`."""

    def __init__(
        self,
        task: str,
        encoding: str,
        max_categories: int,
        val_fraction: float,
        test_fraction: float,
        **loader: Any,
    ) -> None:
        super().__init__(**loader)
        self.task, self.encoding, self.max_categories = task, encoding, max_categories
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.preprocessing: Preprocessing | None = None  # fitted in load(), or given by load_state_dict()
        self.dropped_rows = 0

    @classmethod
    def check_options(cls, options: Options) -> None:
        super().check_options(options)
        kinds = ["auto", "classification", "regression"]
        options.require("task", options.task in kinds, f"one of {kinds}")
        options.require("encoding", options.encoding in ("onehot", "label"), "one of ['onehot', 'label']")
        options.require("max_categories", options.max_categories >= 2, "an integer >= 2")

    def read_table(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The feature columns (name -> values) and the target's values, one per row."""
        raise NotImplementedError

    def load(self) -> dict[str, Split]:
        features, target = self.read_table()
        keep = ~is_missing(target)
        self.dropped_rows = int((~keep).sum())
        if self.dropped_rows:
            log.info(f"dropped {self.dropped_rows} row(s) without a target value")
        features, target = {name: values[keep] for name, values in features.items()}, target[keep]
        if len(target) < MIN_ROWS:
            raise DataError(f"{len(target)} rows with a target: too few to split into train, validation and test "
                            f"(at least {MIN_ROWS})")  # fmt: skip
        if self.preprocessing is None:
            kind = self.task if self.task != "auto" else infer_kind(target)
            classes = sorted_values({str(v).strip() for v in target}) if kind == "classification" else []
            if kind == "classification" and len(classes) < 2:
                raise DataError(f"the target has a single class ({classes}): there is nothing to tell apart")
            labels = torch.tensor([classes.index(str(v).strip()) for v in target]) if classes else None
            index = self.split(labels, len(target))
            train = index["train"].numpy()
            numeric = {name for name, values in features.items() if as_numbers(values) is not None}
            self.preprocessing = Preprocessing.fit(
                {name: values[train] for name, values in features.items()}, numeric, target[train], kind, classes,
                self.encoding, self.max_categories,
            )  # fmt: skip
        else:
            labels = self.preprocessing.encode_target(target) if self.preprocessing.state["classes"] else None
            index = self.split(labels, len(target))
        state = self.preprocessing.state
        self.kind = state["kind"]
        self.class_names = state["classes"] or None
        self.target_mean, self.target_std = state.get("target_mean", 0.0), state.get("target_std", 1.0)
        x = torch.from_numpy(self.preprocessing.transform(features))
        y = self.preprocessing.encode_target(target)
        what = f"{len(state['classes'])} classes {state['classes'][:10]}" if state["classes"] else "regression"
        sizes = "/".join(str(len(i)) for i in index.values())
        log.info(f"{len(target)} rows (train/val/test {sizes}), {len(features)} columns -> {x.shape[1]} inputs; {what}")
        return {split: (x[i], y[i]) for split, i in index.items()}

    def split(self, labels: torch.Tensor | None, num_rows: int) -> dict[str, torch.Tensor]:
        """The seeded split, stratified by class where every class can have a row in validation and in test."""
        smallest = int(num_rows * min(self.val_fraction, self.test_fraction))
        if labels is not None and (torch.bincount(labels).min() < 5 or len(labels.unique()) > smallest):
            labels = None  # a tiny table, or more classes than the smaller held-out split has rows
        return split_indices(num_rows, self.val_fraction, self.test_fraction, self.seed, labels)

    def state_dict(self) -> dict[str, Any]:
        return dict(self.preprocessing.state) if self.preprocessing else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict:
            self.preprocessing = Preprocessing(dict(state_dict))


def target_numbers(target: np.ndarray) -> np.ndarray:
    """A regression's target as floats, or a DataError naming a value that is not a number."""
    numbers = as_numbers(target)
    if numbers is None:
        text = next(v for v in target if as_numbers(np.array([v])) is None)
        raise DataError(f"the target column holds text ({str(text)!r}), and a regression needs numbers")
    return numbers


def infer_kind(target: np.ndarray) -> str:
    numbers = as_numbers(target)
    if numbers is not None and len(np.unique(numbers)) > REGRESSION_MIN_VALUES:
        return "regression"
    return "classification"


class CSVDataModule(TableDataModule):
    """Any CSV file with a header row: `target` names the column to predict, `drop` the columns to ignore."""

    def __init__(self, path: str, target: str, drop: list[str], **table: Any) -> None:
        super().__init__(**table)
        self.path, self.target, self.drop = Path(path), target, list(drop)

    def read_table(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        columns = read_csv(self.path)
        if self.target not in columns:
            raise DataError(
                f"data.target={self.target!r} is not a column of {self.path}: its columns are {list(columns)}"
            )
        unknown = [name for name in self.drop if name not in columns]
        if unknown:
            raise DataError(
                f"data.drop names columns {self.path} does not have: {unknown}; its columns: {list(columns)}"
            )
        features = {name: values for name, values in columns.items() if name not in (self.target, *self.drop)}
        if not features:
            raise DataError(f"{self.path}: no feature column is left besides the target")
        return features, columns[self.target]


def read_csv(path: Path) -> dict[str, np.ndarray]:
    """The columns of a CSV file with a header row (name -> its values as text), in the file's order."""
    if not path.is_file():
        raise DataError(f"no CSV file at {path.resolve()}")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            rows = [row for row in reader if any(cell.strip() for cell in row)]
    except (UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path} is not a readable CSV text file (UTF-8 expected): {error}") from None
    if not header:
        raise DataError(f"{path} is empty: a CSV file needs a header row and data rows")
    if not rows:
        raise DataError(f"{path} has a header but no rows")
    other = next((name for sep, name in OTHER_SEPARATORS.items() if len(header) == 1 and sep in header[0]), None)
    if other:
        raise DataError(f"{path} is separated by {other}, not commas: hyperlab reads comma-separated files (save it "
                        "with commas)")  # fmt: skip
    header = [name.strip() or f"Unnamed: {i}" for i, name in enumerate(header)]  # pandas' name for an index
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise DataError(f"{path}: the header names a column more than once: {repeated}")
    ragged = next((n for n, row in enumerate(rows, start=2) if len(row) != len(header)), None)
    if ragged is not None:
        raise DataError(f"{path}: line {ragged} has {len(rows[ragged - 2])} values, the header {len(header)}")
    table = np.array(rows, dtype=object)
    columns = {name: table[:, i] for i, name in enumerate(header)}
    for name, values in columns.items():  # infinite numbers are not data: a spreadsheet's overflow or an error
        numbers = as_numbers(values)
        if numbers is not None and np.isinf(numbers).any():
            row = int(np.flatnonzero(np.isinf(numbers))[0])
            raise DataError(f"{path}: column {name!r} holds {values[row]!r} on line {row + 2}: infinite values are "
                            "not allowed (leave the cell empty for a missing value)")  # fmt: skip
    return columns


class SklearnTableDataModule(TableDataModule):
    """scikit-learn's bundled tables, no download: iris and wine (3 classes), breast_cancer (2), diabetes
    (regression)."""

    fixed_options = {"encoding": "onehot", "max_categories": 2}  # every column is a number: no categories

    def __init__(self, name: str, **table: Any) -> None:
        super().__init__(**self.fixed_options, **table)
        self.name = name

    @classmethod
    def check_options(cls, options: Options) -> None:
        super().check_options(Options({**cls.fixed_options, **options}))
        options.require("name", options.name in SKLEARN_TABLES, f"one of {list(SKLEARN_TABLES)}")

    def read_table(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        bunch = SKLEARN_TABLES[self.name]()
        features = {str(name): bunch.data[:, i] for i, name in enumerate(bunch.feature_names)}  # numpy str: plain
        names = getattr(bunch, "target_names", None)
        target = np.asarray(names)[bunch.target] if names is not None else bunch.target
        return features, target.astype(object)
