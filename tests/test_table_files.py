"""Tables read by pandas and preprocessed by scikit-learn: CSV dialects (separators sniffed or given, a BOM, quoted
separators, missing-value markers, other text encodings), Parquet, junk and infinite numbers, the fitted
preprocessing kept as plain values and rebuilt identically, and the outputs of the hand-written preprocessing this
replaced (tests/data/tables_c841a95.*, written by the code of commit c841a95) reproduced."""

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import compose_config, write_animals_csv, write_salary_csv
from hydra.utils import instantiate

from hyperlab.config import validate
from hyperlab.data.base import split_indices
from hyperlab.data.preprocessing import (
    Preprocessing,
    categories_of,
    categories_pipeline,
    category_texts,
    numbers_pipeline,
)
from hyperlab.data.tables import read_table
from hyperlab.errors import ConfigError, DataError

DATA = Path(__file__).parent / "data"


def table(tmp_path: Path, *overrides: str):
    module = instantiate(compose_config(tmp_path / "run", *overrides).data, _convert_="all")
    module.setup("fit")
    return module


def animals(tmp_path: Path, path: Path, *overrides: str):
    return table(tmp_path, "experiment=animals", f"data.path={path}", *overrides)


def same_data(one, other) -> None:
    assert one.preprocessing.state == other.preprocessing.state
    for split in ("train", "val", "test"):
        assert torch.equal(one.splits[split][0], other.splits[split][0])
        assert torch.equal(one.splits[split][1], other.splits[split][1])


def test_semicolons_a_bom_and_quoted_separators_read_as_the_comma_file(tmp_path, caplog):
    plain = write_animals_csv(tmp_path / "animal.csv")
    lines = plain.read_text().splitlines()
    quoted = [lines[0].replace(",", ";")] + [
        f'"{line.split(",")[0]}, the {i}th; really";' + ";".join(line.split(",")[1:])
        for i, line in enumerate(lines[1:])
    ]  # both separators inside the quotes of the (dropped) name column
    dialect = tmp_path / "dialect.csv"  # as a spreadsheet saves it in much of Europe, with a byte-order mark
    dialect.write_bytes(b"\xef\xbb\xbf" + "\n".join(quoted).encode() + b"\n")
    with caplog.at_level(logging.INFO, logger="hyperlab"):
        read = animals(tmp_path, dialect)
    assert "reading dialect.csv: columns separated by semicolons (';') (sniffed; data.sep sets it)" in caplog.text
    same_data(read, animals(tmp_path, plain))
    frame = read_table(dialect, None, "utf-8", [], ".")
    assert list(frame.columns)[0] == "animal_name" and frame["animal_name"].iloc[3] == "animal3, the 3th; really"


def test_a_separator_given_is_used_and_tabs_and_bars_are_sniffed(tmp_path, caplog):
    plain = write_animals_csv(tmp_path / "animal.csv")
    expected = animals(tmp_path, plain)
    for name, separator in (("tabs", "\t"), ("bars ('|')", "|")):
        path = tmp_path / f"animal_{len(name)}.txt"
        path.write_text(plain.read_text().replace(",", separator))
        with caplog.at_level(logging.INFO, logger="hyperlab"):
            same_data(animals(tmp_path, path), expected)
        assert f"columns separated by {name} (sniffed" in caplog.text
    given = tmp_path / "given.csv"
    given.write_text(plain.read_text().replace(",", ":"))  # not one it sniffs among: given
    same_data(animals(tmp_path, given, "data.sep=:"), expected)
    tabs = tmp_path / "tabs.tsv"
    tabs.write_text(plain.read_text().replace(",", "\t"))
    same_data(animals(tmp_path, tabs, "data.sep='\\t'"), expected)  # Hydra's quoted string with an escape


def test_missing_markers_are_missing_and_more_can_be_named(tmp_path):
    path = write_salary_csv(tmp_path / "salaries.csv")
    lines = path.read_text().splitlines()
    for n, marker in ((3, "?"), (4, "NA"), (5, "n/a"), (6, ""), (8, "unknown")):
        cells = lines[n].split(",")
        cells[1] = marker  # work_year
        lines[n] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="column 'work_year' holds numbers but 'unknown' in row 8"):
        table(tmp_path, "experiment=salary", f"data.path={path}")
    module = table(tmp_path, "experiment=salary", f"data.path={path}", "data.na_values=[unknown,'?']")
    frame = read_table(path, None, "utf-8", ["unknown", "?"], ".")
    assert frame["work_year"].iloc[2:8].isna().tolist() == [True, True, True, True, False, True]
    years = frame["work_year"].dropna()
    spec = module.preprocessing.state["columns"]["work_year"]
    assert spec["kind"] == "number" and spec["median"] in (2020, 2021, 2022)
    assert spec["median"] == pytest.approx(np.median(years))  # (of the training rows: all three years alike)


def test_infinite_numbers_are_refused_unless_named_missing(tmp_path):
    path = write_animals_csv(tmp_path / "animal.csv")
    lines = path.read_text().splitlines()
    lines[9] = lines[9].rsplit(",", 2)[0] + ",-inf," + lines[9].rsplit(",", 1)[1]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="column 'tail' holds -inf in row 9 \\(after the header\\): infinite values"):
        animals(tmp_path, path)
    module = animals(tmp_path, path, "data.na_values=['-inf']")
    assert module.preprocessing.state["columns"]["tail"]["median"] == 1.0
    assert read_table(path, None, "utf-8", ["-inf"], ".")["tail"].isna().tolist().index(True) == 8  # missing, in row 9


def test_another_text_encoding_is_read_when_given(tmp_path):
    plain = write_animals_csv(tmp_path / "animal.csv")
    latin = tmp_path / "latin.csv"
    latin.write_bytes(plain.read_text().replace("animal1,", "b\xe9b\xe9,").encode("latin-1"))
    with pytest.raises(DataError, match="is not utf-8 text .* data.file_encoding=latin-1"):
        animals(tmp_path, latin)
    frame = read_table(latin, None, "latin-1", [], ".")
    assert frame["animal_name"].iloc[1] == "b\xe9b\xe9"
    same_data(animals(tmp_path, latin, "data.file_encoding=latin-1"), animals(tmp_path, plain))


def test_a_parquet_file_is_read_by_its_extension(tmp_path):
    path = write_salary_csv(tmp_path / "salaries.csv")
    csv_module = table(tmp_path, "experiment=salary", f"data.path={path}")
    parquet = tmp_path / "salaries.parquet"
    pd.read_csv(path).to_parquet(parquet)
    same_data(table(tmp_path, "experiment=salary", f"data.path={parquet}"), csv_module)
    not_parquet = tmp_path / "fake.parquet"
    not_parquet.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="fake.parquet is not a readable Parquet file"):
        table(tmp_path, "experiment=salary", f"data.path={not_parquet}")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.sep=';;'", "data.sep=';;' is not allowed: expected null \\(sniffed\\) or one character"),
        ("data.file_encoding=utf9", "data.file_encoding='utf9' is not allowed: expected a text encoding"),
        (
            "data.encoding=latin-1",
            "expected one of \\['onehot', 'label'\\] \\(a file's text encoding is data.file_encoding\\)",
        ),
        ("data.na_values=3", "data.na_values=3 is not allowed: expected list\\[str\\]"),
    ],
)
def test_reading_options_out_of_range_are_refused_before_reading(tmp_path, override, message):
    path = write_animals_csv(tmp_path / "animal.csv")
    with pytest.raises(ConfigError, match=message):
        validate(compose_config(tmp_path / "run", "experiment=animals", f"data.path={path}", override))


@pytest.mark.parametrize("case", ["animals", "salary", "salary_label"])
def test_the_outputs_of_the_hand_written_preprocessing_are_reproduced(tmp_path, case):
    """The same state and the same tensors, to the bit, as commit c841a95's own code gave on these tables
    (tests/data/tables_c841a95.*): old checkpoints keep their meaning."""
    new_rows = {"animals": lambda: write_animals_csv(tmp_path / "new.csv", rows=60, seed=1),
                "salary": lambda: write_salary_csv(tmp_path / "new.csv", seed=1, shift=50_000)}  # fmt: skip
    path = write_animals_csv(tmp_path / "a.csv") if case == "animals" else write_salary_csv(tmp_path / "s.csv")
    overrides = ["experiment=animals"] if case == "animals" else ["experiment=salary"]
    overrides += ["data.encoding=label"] if case == "salary_label" else []
    module = table(tmp_path, *overrides, f"data.path={path}")
    expected = np.load(DATA / "tables_c841a95.npz")
    old_state = json.loads((DATA / "tables_c841a95.json").read_text())[case]
    assert json.dumps(module.preprocessing.state, sort_keys=True) == json.dumps(old_state, sort_keys=True)
    for split, (x, y) in module.splits.items():
        assert np.array_equal(x.numpy(), expected[f"{case}/{split}/x"]), split
        assert np.array_equal(y.numpy(), expected[f"{case}/{split}/y"]), split
    new = read_table(new_rows[case.split("_")[0]](), None, "utf-8", ["?"], ".")
    assert np.array_equal(module.preprocessing.transform(new).numpy(), expected[f"{case}/new/x"])


@pytest.mark.parametrize("encoding", ["onehot", "label"])
def test_the_fitted_preprocessing_is_plain_values_that_rebuild_what_scikit_learn_fits(tmp_path, encoding):
    path = write_salary_csv(tmp_path / "salaries.csv")
    module = table(tmp_path, "experiment=salary", f"data.path={path}", f"data.encoding={encoding}")
    used = module.preprocessing  # what training applied: rebuilt from its plain values
    new = read_table(write_salary_csv(tmp_path / "new.csv", seed=2, shift=20_000), None, "utf-8", ["?"], ".")
    # scikit-learn's own pipelines, fitted here on the training rows, transform every new row by themselves
    rows = read_table(path, None, "utf-8", ["?"], ".").dropna(subset=["salary_in_usd"])
    train = rows.iloc[split_indices(len(rows), 0.15, 0.15, seed=0)["train"].numpy()]  # a regression: not stratified
    numbers, categories = used.number_columns, used.category_columns
    direct_numbers = numbers_pipeline().fit(train[numbers])
    texts = pd.DataFrame({name: category_texts(train[name]) for name in categories})
    direct_categories = categories_pipeline(
        encoding, [categories_of(texts[name], module.max_categories) for name in categories]
    )
    direct_categories.fit(texts)
    outputs = np.hstack(
        [
            direct_numbers.transform(new[numbers]),
            direct_categories.transform(pd.DataFrame({n: category_texts(new[n]) for n in categories})),
        ]
    )
    widths = [1] * len(numbers) + [len(used.state["columns"][n]["categories"]) if encoding == "onehot" else 1
                                   for n in categories]  # fmt: skip
    starts = np.cumsum([0, *widths])
    by_column = {name: outputs[:, a:b] for name, a, b in zip(numbers + categories, starts, starts[1:], strict=False)}
    expected = np.hstack([by_column[name] for name in used.state["columns"]]).astype(np.float32)  # the table's order
    assert np.allclose(used.transform(new).numpy(), expected, rtol=1e-6, atol=1e-6)
    for one, other in ((direct_numbers, used.numbers), (direct_categories, used.categories)):
        for (step, fitted), (_, rebuilt) in zip(one.steps, other.steps, strict=True):
            for attribute in ("statistics_", "mean_", "scale_"):  # (var_: unused by transform, kept as std²)
                if hasattr(fitted, attribute):
                    assert np.allclose(getattr(fitted, attribute), getattr(rebuilt, attribute), rtol=1e-12), step
            if hasattr(fitted, "categories_"):
                assert [list(c) for c in fitted.categories_] == [list(c) for c in rebuilt.categories_]
    assert used.numbers.named_steps["standardscaler"].mean_[numbers.index("work_year")] == pytest.approx(
        train["work_year"].mean()
    )
    # the plain values through JSON, and through a checkpoint loaded with weights_only=True, rebuild it to the bit
    state = json.loads(json.dumps(used.state))
    assert torch.equal(Preprocessing(state).transform(new), used.transform(new))
    torch.save({"CSVDataModule": module.state_dict()}, tmp_path / "state.ckpt")  # as Lightning files it
    stored = torch.load(tmp_path / "state.ckpt", weights_only=True)["CSVDataModule"]
    assert torch.equal(Preprocessing(stored).transform(new), used.transform(new))


def test_the_table_lives_as_one_float_tensor_split_by_slices(tmp_path):
    module = table(tmp_path, "experiment=salary", f"data.path={write_salary_csv(tmp_path / 's.csv')}")
    storages = {module.splits[split][0].untyped_storage().data_ptr() for split in ("train", "val", "test")}
    assert len(storages) == 1 and module.splits["train"][0].dtype == torch.float32
    x = module.splits["train"][0]
    assert x.is_contiguous() and module.splits["val"][0].data_ptr() == x.data_ptr() + x.numel() * 4


def test_only_the_columns_a_model_reads_are_held_to_the_junk_rule(tmp_path):
    path = tmp_path / "mixed.csv"
    rows = [f"{'n/k' if i == 5 else i},{i % 7},{'other' if i % 40 == 0 else i % 3}" for i in range(200)]
    path.write_text("id,size,grade\n" + "\n".join(rows) + "\n")  # a dropped id with junk; a class among numbers
    module = table(tmp_path, "data=csv", f"data.path={path}", "data.target=grade", "data.drop=[id]")
    assert module.kind == "classification" and module.class_names == ["0", "1", "2", "other"]
    with pytest.raises(DataError, match="column 'id' holds numbers but 'n/k' in row 6"):
        table(tmp_path, "data=csv", f"data.path={path}", "data.target=grade")
    infinite = tmp_path / "infinite_target.csv"
    infinite.write_text("x,y\n" + "\n".join(f"{i},{'inf' if i == 3 else i * 1.5}" for i in range(40)) + "\n")
    with pytest.raises(DataError, match="the target column holds inf: a regression needs finite numbers"):
        table(tmp_path, "data=csv", f"data.path={infinite}", "data.target=y", "data.task=regression")


def test_the_target_may_be_named_in_drop_and_true_false_columns_are_categories(tmp_path):
    path = tmp_path / "flags.csv"
    rows = [f"{i % 5},{'True' if i % 3 else 'False'},{'True' if i % 2 else 'False'}" for i in range(120)]
    path.write_text("size,flag,label\n" + "\n".join(rows) + "\n")
    module = table(tmp_path, "data=csv", f"data.path={path}", "data.target=label", "data.drop=[label]")
    assert module.class_names == ["False", "True"]  # as the csv module read them, before pandas did
    assert module.preprocessing.state["columns"]["flag"] == {"kind": "category", "categories": ["False", "True"]}


def test_an_empty_header_cell_is_an_unnamed_column_as_pandas_names_it(tmp_path):
    plain = write_animals_csv(tmp_path / "animal.csv")
    trailing = tmp_path / "trailing.csv"  # a spreadsheet's export: a separator after the last column, twice
    trailing.write_text("".join(line + ",,\n" for line in plain.read_text().splitlines()))
    module = animals(tmp_path, trailing, "data.drop=[animal_name,'Unnamed: 9','Unnamed: 10']")
    same_data(module, animals(tmp_path, plain))


def test_a_parquet_column_of_lists_is_refused_by_name_unless_dropped(tmp_path):
    frame = pd.read_csv(write_animals_csv(tmp_path / "animal.csv"))
    frame["tags"] = [[i, i + 1] for i in range(len(frame))]
    frame.to_parquet(tmp_path / "animal.parquet")
    with pytest.raises(DataError, match="column 'tags' holds ndarrays, not numbers or texts: drop it"):
        animals(tmp_path, tmp_path / "animal.parquet")
    module = animals(tmp_path, tmp_path / "animal.parquet", "data.drop=[animal_name,tags]")
    same_data(module, animals(tmp_path, tmp_path / "animal.csv"))


def test_decimal_commas_are_read_when_given_and_named_when_not(tmp_path):
    plain = write_salary_csv(tmp_path / "salaries.csv")
    frame = pd.read_csv(plain)
    frame["work_year"] = frame["work_year"] + 0.5  # numbers with a fraction, written as a European spreadsheet does
    european = tmp_path / "european.csv"
    frame.to_csv(european, sep=";", decimal=",", index=False)
    message = "'work_year' holds numbers with decimal commas \\('202\\d,5' in row 1 after the header\\): read them"
    with pytest.raises(DataError, match=message + " with data.decimal=','"):
        table(tmp_path, "experiment=salary", f"data.path={european}")
    module = table(tmp_path, "experiment=salary", f"data.path={european}", "data.decimal=','")
    assert module.preprocessing.state["columns"]["work_year"]["kind"] == "number"
    assert module.preprocessing.state["columns"]["work_year"]["median"] % 1 == 0.5
