"""A table's preprocessing: scikit-learn's transformers, kept as plain values.

Two scikit-learn pipelines, one for the number columns and one for the category columns:

- numbers:    `SimpleImputer(median)` -> `StandardScaler`              state per column: median, mean, std
- categories: `OneHotEncoder(ignore unknown)`                         state per column: categories
  (`encoding=label`: `OrdinalEncoder` -> `SimpleImputer(mean)` -> `StandardScaler`: + mean, std; an unknown
  category becomes the mean code, 0 once standardised); a missing cell is the category "" (pandas fills it in)

Their outputs are put in the table's column order (a number gives one input, a category one per category, or one
with `label`). Not a `ColumnTransformer`: it transforms every row of a category column (below: each value once),
and stacks its float64 outputs for the whole table (below: a block of rows at a time into float32).

They are fitted on the training rows only. What they learnt is kept as plain numbers and texts (`median` is the
imputer's `statistics_`, `mean` and `std` the scaler's `mean_` and `scale_`, `categories` the encoder's
`categories_`): the datamodule's `state_dict` goes into every checkpoint and `preprocessing.json`, and
`Preprocessing(state)` rebuilds the same fitted transformers from it, with no pickle (checkpoints load with
`weights_only=True`). Training itself applies the rebuilt transformers, so evaluation and prediction apply exactly
what training applied.

The table becomes one float32 tensor, filled a block of rows at a time: scikit-learn works in float64 and would
otherwise hold the whole table once more, twice over (docs/benchmarks.md, "Big tables").
"""

import logging
import math
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from hyperlab.data.messages import quoted, quoted_list, shortened
from hyperlab.errors import DataError
from hyperlab.options import sorted_values

log = logging.getLogger(__name__)

ROWS_PER_BLOCK = 32_768  # rows transformed at a time: float64 temporaries of the number columns, a few MB each
MISSING_CATEGORY = ""  # a category column's missing cell is the category "" (an empty cell's text)


def is_number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def is_texts(values: Any) -> bool:
    return isinstance(values, list) and all(isinstance(v, str) for v in values)


def state_problem(state: Any) -> str | None:
    """What is wrong with a preprocessing state (None: it has the shape `Preprocessing.fit` writes)."""
    if not isinstance(state, dict) or not isinstance(state.get("columns"), dict) or not state["columns"]:
        return "no columns"
    if state.get("encoding") not in ("onehot", "label") or state.get("kind") not in ("classification", "regression"):
        return f"encoding {quoted(state.get('encoding'))} / kind {quoted(state.get('kind'))}"
    if not is_texts(state.get("classes")):
        return "classes must be texts"
    if state["kind"] == "regression" and not (
        is_number(state.get("target_mean")) and is_number(state.get("target_std"))
    ):
        return "the target's mean and spread must be numbers"
    for name, spec in state["columns"].items():
        if not isinstance(spec, dict):
            return f"column {quoted(name)}"
        numbers = ["median", "mean", "std"] if spec.get("kind") == "number" else []
        numbers += ["mean", "std"] if spec.get("kind") == "category" and state["encoding"] == "label" else []
        if not isinstance(name, str) or spec.get("kind") not in ("number", "category"):
            return f"column {quoted(name)}"
        expected = {"kind", *numbers, *(["categories"] if spec["kind"] == "category" else [])}
        if set(spec) != expected:
            return f"column {quoted(name)}: keys {quoted_list(sorted(map(str, spec)))}, expected {sorted(expected)}"
        if spec["kind"] == "category" and not (is_texts(spec.get("categories")) and spec["categories"]):
            return f"column {quoted(name)}: categories must be texts"
        if not all(is_number(spec.get(key)) for key in numbers) or ("std" in numbers and spec["std"] <= 0):
            return f"column {quoted(name)}: {', '.join(numbers)} must be numbers (std > 0)"
    return None


def median(values: np.ndarray) -> float:
    """The `SimpleImputer` strategy of the number columns: the median of a column's present values (0 if none, as
    scikit-learn's "median" keeps an empty column). The same value as strategy="median", which goes through masked
    arrays: 2.1 s against 0.13 s for 700 k rows x 15 columns (docs/benchmarks.md, "Big tables")."""
    return float(np.median(values)) if len(values) else 0.0


def numbers_pipeline() -> Pipeline:
    """The unfitted scikit-learn pipeline of the number columns."""
    return make_pipeline(SimpleImputer(strategy=median, keep_empty_features=True), StandardScaler())


def categories_pipeline(encoding: str, categories: list[list[str]]) -> Pipeline:
    """The unfitted scikit-learn pipeline of the category columns (`categories`: each column's, those of the
    training rows). It takes the columns as `category_texts` gives them, a missing cell already the category
    `MISSING_CATEGORY` (pandas fills it in the column's categorical: a `SimpleImputer` here took 0.5 s a 1 M-row
    table, filling object arrays)."""
    if encoding == "onehot":  # an unknown category sets no column
        return make_pipeline(OneHotEncoder(categories=categories, handle_unknown="ignore", sparse_output=False))
    ordinal = OrdinalEncoder(categories=categories, handle_unknown="use_encoded_value", unknown_value=np.nan)
    return make_pipeline(ordinal, SimpleImputer(strategy="mean"), StandardScaler())


def column_state(values: pd.Series, encoding: str, max_categories: int) -> dict[str, Any]:
    """One column's pipeline fitted on its training rows (`values`), and what it learnt as plain values."""
    if pd.api.types.is_numeric_dtype(values):
        steps = numbers_pipeline().fit(values.to_frame()).named_steps
        imputer, scaler = steps["simpleimputer"], steps["standardscaler"]
        return {"kind": "number", "median": float(imputer.statistics_[0]), "mean": float(scaler.mean_[0]),
                "std": float(scaler.scale_[0])}  # fmt: skip
    texts = category_texts(values)
    steps = categories_pipeline(encoding, [categories_of(texts, max_categories)]).fit(texts.to_frame()).named_steps
    encoder = steps["onehotencoder" if encoding == "onehot" else "ordinalencoder"]
    state: dict[str, Any] = {"kind": "category", "categories": [str(c) for c in encoder.categories_[0]]}
    if encoding == "label":
        state.update(mean=float(steps["standardscaler"].mean_[0]), std=float(steps["standardscaler"].scale_[0]))
    return state


def restore(pipeline: Pipeline, specs: list[dict[str, Any]]) -> None:
    """Give a group's pipeline, fitted on a stand-in row (which sets scikit-learn's own bookkeeping), the
    statistics of its columns' `specs`: the imputers' and the scaler's (the encoders' categories are their
    constructor's `categories`)."""
    steps = [step for _, step in pipeline.steps]
    if specs[0]["kind"] == "number":
        steps[0].statistics_ = np.array([spec["median"] for spec in specs])
    if "mean" in specs[0]:  # numbers, or label-encoded categories: the last two steps are an imputer and the scaler
        if specs[0]["kind"] == "category":  # an unknown category: the mean code
            steps[-2].statistics_ = np.array([spec["mean"] for spec in specs])
        scaler = steps[-1]
        scaler.mean_ = np.array([spec["mean"] for spec in specs])
        scaler.scale_ = np.array([spec["std"] for spec in specs])
        scaler.var_ = scaler.scale_**2


class Preprocessing:
    """What is fitted on the training rows, as plain values (`state`): per feature column its kind and statistics,
    the classes of a classification target or the mean and spread of a regression one; and the fitted scikit-learn
    pipelines those values rebuild: `numbers` (the number columns) and `categories` (the category columns)."""

    def __init__(self, state: dict[str, Any]) -> None:
        problem = state_problem(state)
        if problem:  # a state read from a file: plain values of the shape `fit` writes, or refused
            raise DataError(f"the table preprocessing stored with the model is not valid: {problem}")
        self.state = state
        encoding, columns = state["encoding"], state["columns"]
        self.number_columns = [name for name, spec in columns.items() if spec["kind"] == "number"]
        self.category_columns = [name for name, spec in columns.items() if spec["kind"] == "category"]
        self.numbers = numbers_pipeline()
        if self.number_columns:  # fitted on a stand-in row, then given the statistics
            self.numbers.fit(pd.DataFrame(dict.fromkeys(self.number_columns, [0.0])))
            restore(self.numbers, [columns[name] for name in self.number_columns])
        categories = [columns[name]["categories"] for name in self.category_columns]
        self.categories = categories_pipeline(encoding, categories)
        if self.category_columns:  # fitted on a stand-in row: the categories are the constructor's
            self.categories.fit(
                pd.DataFrame({name: [c[0]] for name, c in zip(self.category_columns, categories, strict=True)})
            )
            restore(self.categories, [columns[name] for name in self.category_columns])
        self.slots: dict[str, slice] = {}  # where each column's outputs go: in the table's column order
        self.width = 0
        for name, spec in columns.items():
            width = len(spec["categories"]) if spec["kind"] == "category" and encoding == "onehot" else 1
            self.slots[name] = slice(self.width, self.width + width)
            self.width += width

    @classmethod
    def fit(
        cls,
        table: pd.DataFrame,
        train_rows: np.ndarray,
        target: pd.Series,
        kind: str,
        classes: list[str],
        encoding: str,
        max_categories: int,
    ) -> "Preprocessing":
        """Fit on the training rows (`train_rows` of `table`, and their `target`), a column at a time (a copy of one
        column's training rows at a time, and each column's statistics to the bit as the hand-written preprocessing
        of commit c841a95 computed them). A column is a number or a category by its dtype, which
        `tables.read_table` decided on the whole table (a split must not decide it)."""
        columns = {name: column_state(table[name].iloc[train_rows], encoding, max_categories) for name in table}
        state: dict[str, Any] = {"columns": columns, "encoding": encoding, "kind": kind, "classes": classes}
        if kind == "regression":
            y = target_numbers(target)
            state.update(target_mean=float(y.mean()), target_std=float(y.std()) or 1.0)
        return cls(state)

    def transform(self, table: pd.DataFrame, rows: np.ndarray | None = None) -> torch.Tensor:
        """The inputs the network gets, one float32 row per table row (in the order of `rows` if given): one or
        more columns per feature column, in the table's column order. The number columns go through `numbers` a
        block of rows at a time; a category column's few values go through `categories` once each, and each row
        takes its value's outputs (the same outputs: 0.05 s instead of 1.0 s for four category columns of a
        1 M-row table, which scikit-learn would encode value by value in Python)."""
        features = self.features_of(table)
        rows = np.arange(len(table)) if rows is None else rows
        x = np.empty((len(rows), self.width), dtype=np.float32)
        by_value = self.outputs_by_value(features)
        for start in range(0, len(rows), ROWS_PER_BLOCK):
            block = rows[start : start + ROWS_PER_BLOCK]
            end = start + len(block)
            if self.number_columns:
                numbers = self.numbers.transform(features.iloc[block][self.number_columns])  # (rows first: a copy
                # of the block's, not of every row's numbers)
                for i, name in enumerate(self.number_columns):
                    x[start:end, self.slots[name]] = numbers[:, i : i + 1]
            for name, (codes, outputs) in by_value.items():
                x[start:end, self.slots[name]] = outputs[codes[block]]
        return torch.from_numpy(x)

    def outputs_by_value(self, features: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per category column: each row's value (its code in the column's categorical) and the outputs of
        `categories` for each value, one row a value."""
        values = {name: list(features[name].cat.categories) for name in self.category_columns}
        if not values:
            return {}
        longest = max(len(texts) for texts in values.values())  # every column's values, padded with its first
        every_value = pd.DataFrame({name: texts + texts[:1] * (longest - len(texts)) for name, texts in values.items()})
        outputs = self.categories.transform(every_value).astype(np.float32)
        by_value, start = {}, 0
        for name, texts in values.items():
            width = self.slots[name].stop - self.slots[name].start
            codes = features[name].cat.codes.to_numpy()
            by_value[name] = (codes, outputs[: len(texts), start : start + width])
            start += width
        return by_value

    def features_of(self, table: pd.DataFrame) -> pd.DataFrame:
        """The table's feature columns as the transformers take them, or a DataError naming what does not fit."""
        features = {}
        for name, spec in self.state["columns"].items():
            if name not in table:
                raise DataError(f"the table has no column {quoted(name)}, which the model was trained with")
            values = table[name]
            if spec["kind"] == "number":
                if not pd.api.types.is_numeric_dtype(values):
                    raise DataError(f"column {quoted(name)} was numeric in training and has text here")
                features[name] = values
                continue
            texts = category_texts(values)
            unseen = sorted_values(set(texts.cat.categories) - set(spec["categories"]))  # ('': a missing cell)
            if unseen:
                log.warning(f"column {quoted(name)}: {quoted_list(unseen)} never seen in training (taken as no known "
                            "category)")  # fmt: skip
            features[name] = texts
        return pd.DataFrame(features, copy=False)

    def encode_target(self, target: pd.Series) -> torch.Tensor:
        if self.state["kind"] == "classification":
            return class_indices(target, self.state["classes"])
        y = (target_numbers(target) - self.state["target_mean"]) / self.state["target_std"]
        return torch.tensor(y, dtype=torch.float32).unsqueeze(1)


def text_of(value: Any) -> str:
    """A cell as the text a file holds: stripped, and a whole number without a trailing `.0` (a class `50`, not
    `50.0`: a column with a missing cell is read as floats)."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def as_categories(values: pd.Series) -> pd.Series:
    """A column as texts (`text_of`), held as a pandas categorical: each distinct value is turned into text once,
    whatever the table's size (the rows keep their codes); missing cells stay missing."""
    values = values if isinstance(values.dtype, pd.CategoricalDtype) else values.astype("category")
    texts = [text_of(value) for value in values.cat.categories]
    if len(set(texts)) == len(texts):
        return values.cat.rename_categories(texts)
    return values.astype(object).map(text_of, na_action="ignore").astype("category")  # " a" and "a": one text


def categories_of(texts: pd.Series, max_categories: int) -> list[str]:
    """A category column's categories in its training rows, sorted (numbers in numeric order), or a DataError if
    there are too many to be categories."""
    categories = sorted_values(set(texts.unique().astype(str)))
    if len(categories) > max_categories or (len(categories) > 10 and len(categories) > 0.5 * len(texts)):
        raise DataError(
            f"column {quoted(texts.name)} has {len(categories)} different texts in {len(texts)} training rows: not "
            f"categories (an id or a name?); drop it with data.drop=[{shortened(texts.name)}] (or raise "
            "data.max_categories)"
        )
    return categories


def category_texts(values: pd.Series) -> pd.Series:
    """A category column for the encoders: texts, a missing cell as `MISSING_CATEGORY`."""
    texts = as_categories(values)
    if not texts.isna().any():
        return texts
    if MISSING_CATEGORY not in texts.cat.categories:
        texts = texts.cat.add_categories([MISSING_CATEGORY])
    return texts.fillna(MISSING_CATEGORY)


def class_indices(target: pd.Series, classes: list[str]) -> torch.Tensor:
    """Each row's class, as its index in `classes`."""
    index = {name: i for i, name in enumerate(classes)}
    texts = as_categories(target)
    unknown = sorted_values(set(texts.cat.categories) - index.keys())
    if unknown:
        raise DataError(f"the target has classes the model was not trained on: {quoted_list(unknown)}")
    lookup = np.array([index[text] for text in texts.cat.categories], dtype=np.int64)
    return torch.from_numpy(lookup[texts.cat.codes.to_numpy()])


def target_numbers(target: pd.Series) -> np.ndarray:
    """A regression's target as finite floats, or a DataError naming a value that is not one."""
    if not pd.api.types.is_numeric_dtype(target):
        numbers = pd.to_numeric(target.astype(object), errors="coerce")
        text = target[numbers.isna() & target.notna()]
        if len(text):
            raise DataError(f"the target column holds text ({quoted(text.iloc[0])}), and a regression needs numbers")
        target = numbers
    values = target.to_numpy(dtype=float)
    if np.isinf(values).any():
        raise DataError(f"the target column holds {values[np.isinf(values)][0]}: a regression needs finite numbers")
    return values
