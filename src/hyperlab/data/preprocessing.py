"""A table's preprocessing: scikit-learn's transformers, kept as plain values.

Per feature column, in the table's order, one scikit-learn pipeline inside a `ColumnTransformer`:

- a number:   `SimpleImputer(median)` -> `StandardScaler`              state: median, mean, std
- a category: `SimpleImputer("")` -> `OneHotEncoder(ignore unknown)`   state: categories
  (`encoding=label`: -> `OrdinalEncoder` -> `SimpleImputer(mean)` -> `StandardScaler`: + mean, std; an unknown
  category becomes the mean code, 0 once standardised)

They are fitted on the training rows only. What they learnt is kept as plain numbers and texts (`median` is the
imputer's `statistics_`, `mean` and `std` the scaler's `mean_` and `scale_`, `categories` the encoder's
`categories_`): the datamodule's `state_dict` goes into every checkpoint and `preprocessing.json`, and
`Preprocessing(state)` rebuilds the same fitted transformers from it, with no pickle (checkpoints load with
`weights_only=True`). Training itself applies the rebuilt transformers, so evaluation and prediction apply exactly
what training applied.

The table becomes one float32 tensor, filled a block of rows at a time: scikit-learn works in float64 and would
otherwise hold the whole table once more, twice over (see docs/benchmarks.md, "Big tables").
"""

import logging
import math
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from hyperlab.errors import DataError
from hyperlab.options import sorted_values

log = logging.getLogger(__name__)

ROWS_PER_BLOCK = 16_384  # rows transformed at a time: float64 temporaries of a few MB, whatever the table's size
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
        if spec["kind"] == "category" and not (is_texts(spec.get("categories")) and spec["categories"]):
            return f"column {name!r}: categories must be texts"
        if not all(is_number(spec.get(key)) for key in numbers) or ("std" in numbers and spec["std"] <= 0):
            return f"column {name!r}: {', '.join(numbers)} must be numbers (std > 0)"
    return None


def column_pipeline(kind: str, encoding: str, categories: list[str] | None = None) -> Pipeline:
    """The unfitted scikit-learn pipeline of one feature column (`categories`: those of the training rows)."""
    if kind == "number":
        return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler())
    fill = SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY)
    if encoding == "onehot":  # an unknown category sets no column
        return make_pipeline(fill, OneHotEncoder(categories=[categories], handle_unknown="ignore", sparse_output=False))
    ordinal = OrdinalEncoder(categories=[categories], handle_unknown="use_encoded_value", unknown_value=np.nan)
    return make_pipeline(fill, ordinal, SimpleImputer(strategy="mean"), StandardScaler())


def column_state(pipeline: Pipeline, kind: str, encoding: str) -> dict[str, Any]:
    """A fitted column pipeline's state, as plain values."""
    steps = pipeline.named_steps
    if kind == "number":
        scaler = steps["standardscaler"]
        return {"kind": "number", "median": float(steps["simpleimputer"].statistics_[0]),
                "mean": float(scaler.mean_[0]), "std": float(scaler.scale_[0])}  # fmt: skip
    encoder = steps["onehotencoder" if encoding == "onehot" else "ordinalencoder"]
    state: dict[str, Any] = {"kind": "category", "categories": [str(c) for c in encoder.categories_[0]]}
    if encoding == "label":
        scaler = steps["standardscaler"]
        state.update(mean=float(scaler.mean_[0]), std=float(scaler.scale_[0]))
    return state


def restore(pipeline: Pipeline, spec: dict[str, Any]) -> None:
    """Give a pipeline, fitted on a stand-in row (which sets scikit-learn's own bookkeeping), the statistics of
    `spec`: the imputer's and the scaler's (an encoder's categories are its constructor's `categories`)."""
    steps = pipeline.steps
    if spec["kind"] == "number":
        steps[0][1].statistics_ = np.array([spec["median"]])
    if "mean" in spec:  # a number, or a label-encoded category: the last two steps are the mean imputer and scaler
        if spec["kind"] == "category":
            steps[-2][1].statistics_ = np.array([spec["mean"]])
        scaler = steps[-1][1]
        scaler.mean_, scaler.scale_, scaler.var_ = (np.array([spec["mean"]]), np.array([spec["std"]]),
                                                    np.array([spec["std"] ** 2]))  # fmt: skip


class Preprocessing:
    """What is fitted on the training rows, as plain values (`state`): per feature column its kind and statistics,
    the classes of a classification target or the mean and spread of a regression one; and the fitted
    `ColumnTransformer` those values rebuild (`transformer`)."""

    def __init__(self, state: dict[str, Any]) -> None:
        problem = state_problem(state)
        if problem:  # a state read from a file: plain values of the shape `fit` writes, or refused
            raise DataError(f"the table preprocessing stored with the model is not valid: {problem}")
        self.state = state
        encoding = state["encoding"]
        columns = state["columns"]
        self.transformer = ColumnTransformer(
            [(name, column_pipeline(spec["kind"], encoding, spec.get("categories")), [name])
             for name, spec in columns.items()],
            sparse_threshold=0,
        )  # fmt: skip
        stand_in = pd.DataFrame(
            {name: [0.0] if spec["kind"] == "number" else [spec["categories"][0]] for name, spec in columns.items()}
        )
        self.transformer.fit(stand_in)
        for name, spec in columns.items():
            restore(self.transformer.named_transformers_[name], spec)
        self.width = sum(1 if spec["kind"] == "number" or encoding == "label" else len(spec["categories"])
                         for spec in columns.values())  # fmt: skip

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
        """Fit on the training rows (`train_rows` of `table`, and their `target`), a column at a time. A column is a
        number or a category by its dtype, which `tables.read_table` decided on the whole table (a split must not
        decide it)."""
        columns: dict[str, dict[str, Any]] = {}
        for name in table.columns:
            values = table[name].iloc[train_rows]
            if pd.api.types.is_numeric_dtype(values):
                pipeline = column_pipeline("number", encoding).fit(values.to_frame())
                columns[name] = column_state(pipeline, "number", encoding)
                continue
            texts = category_texts(values)
            categories = sorted_values(set(texts.unique().astype(str)))
            if len(categories) > max_categories or (len(categories) > 10 and len(categories) > 0.5 * len(values)):
                raise DataError(
                    f"column {name!r} has {len(categories)} different texts in {len(values)} training rows: not "
                    f"categories (an id or a name?); drop it with data.drop=[{name}] (or raise data.max_categories)"
                )
            pipeline = column_pipeline("category", encoding, categories).fit(texts.to_frame())
            columns[name] = column_state(pipeline, "category", encoding)
        state: dict[str, Any] = {"columns": columns, "encoding": encoding, "kind": kind, "classes": classes}
        if kind == "regression":
            y = target_numbers(target)
            state.update(target_mean=float(y.mean()), target_std=float(y.std()) or 1.0)
        return cls(state)

    def transform(self, table: pd.DataFrame, rows: np.ndarray | None = None) -> torch.Tensor:
        """The inputs the network gets, one float32 row per table row (in the order of `rows` if given): one or
        more columns per feature column."""
        features = self.features_of(table)
        order = np.arange(len(table)) if rows is None else rows
        x = torch.empty(len(order), self.width, dtype=torch.float32)
        for start in range(0, len(order), ROWS_PER_BLOCK):
            block = features.iloc[order[start : start + ROWS_PER_BLOCK]]
            x[start : start + len(block)] = torch.from_numpy(self.transformer.transform(block))
        return x

    def features_of(self, table: pd.DataFrame) -> pd.DataFrame:
        """The table's feature columns as the transformers take them, or a DataError naming what does not fit."""
        features = {}
        for name, spec in self.state["columns"].items():
            if name not in table:
                raise DataError(f"the table has no column {name!r}, which the model was trained with")
            values = table[name]
            if spec["kind"] == "number":
                if not pd.api.types.is_numeric_dtype(values):
                    raise DataError(f"column {name!r} was numeric in training and has text here")
                features[name] = values
                continue
            texts = category_texts(values)
            unseen = sorted_values(set(texts.cat.categories) - {*spec["categories"], MISSING_CATEGORY})
            if unseen:
                log.warning(f"column {name!r}: {unseen[:5]} never seen in training (taken as no known category)")
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
    whatever the table's size; missing cells stay missing."""
    codes, uniques = pd.factorize(values)
    texts = [text_of(value) for value in uniques]
    distinct = sorted(set(texts))
    position = {text: i for i, text in enumerate(distinct)}
    lookup = np.array([position[text] for text in texts] + [-1], dtype=np.int64)  # a code -1 (missing) stays -1
    texts = pd.Categorical.from_codes(lookup[codes], categories=distinct)
    return pd.Series(texts, index=values.index, name=values.name)


def category_texts(values: pd.Series) -> pd.Series:
    """A category column for the encoders: texts, a missing cell as `MISSING_CATEGORY`."""
    texts = as_categories(values)
    if MISSING_CATEGORY not in texts.cat.categories:
        texts = texts.cat.add_categories([MISSING_CATEGORY])
    return texts.fillna(MISSING_CATEGORY)


def class_indices(target: pd.Series, classes: list[str]) -> torch.Tensor:
    """Each row's class, as its index in `classes`."""
    index = {name: i for i, name in enumerate(classes)}
    texts = as_categories(target)
    unknown = sorted_values(set(texts.cat.categories) - index.keys())
    if unknown:
        raise DataError(f"the target has classes the model was not trained on: {unknown[:5]}")
    lookup = np.array([index[text] for text in texts.cat.categories], dtype=np.int64)
    return torch.from_numpy(lookup[texts.cat.codes.to_numpy()])


def target_numbers(target: pd.Series) -> np.ndarray:
    """A regression's target as finite floats, or a DataError naming a value that is not one."""
    if not pd.api.types.is_numeric_dtype(target):
        numbers = pd.to_numeric(target.astype(object), errors="coerce")
        text = target[numbers.isna() & target.notna()]
        if len(text):
            raise DataError(f"the target column holds text ({str(text.iloc[0])!r}), and a regression needs numbers")
        target = numbers
    values = target.to_numpy(dtype=float)
    if np.isinf(values).any():
        raise DataError(f"the target column holds {values[np.isinf(values)][0]}: a regression needs finite numbers")
    return values
