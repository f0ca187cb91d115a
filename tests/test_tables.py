"""Tables: CSV files of the course's two shapes, scikit-learn's bundled tables and multiple regression - the task
inferred from the target, preprocessing fitted on the training rows only and reused by evaluation, each bad file
refused before training."""

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import commands
import numpy as np
import pandas as pd
import pytest
import torch
from helpers import compose_config, curve, read_events, write_animals_csv, write_salary_csv
from hydra.utils import instantiate

from hyperlab.data.base import split_indices
from hyperlab.data.preprocessing import Preprocessing
from hyperlab.errors import ConfigError, DataError
from hyperlab.experiment import build
from hyperlab.train import train


def table(tmp_path: Path, *overrides: str):
    module = instantiate(compose_config(tmp_path / "run", *overrides).data, _convert_="all")
    module.setup("fit")
    return module


def test_animals_are_classified_from_a_csv_file(tmp_path):
    path = write_animals_csv(tmp_path / "animal.csv")
    result = train(compose_config(tmp_path / "run", "experiment=animals", f"data.path={path}"))
    assert result["metrics"]["test/acc"] >= 0.85
    checkpoint = torch.load(result["best_checkpoint"], weights_only=True)
    assert checkpoint["hyper_parameters"]["class_names"] == ["bird", "mammal", "reptile"]
    assert (tmp_path / "run" / "figures" / "confusion_matrix.png").is_file()
    state = json.loads((tmp_path / "run" / "preprocessing.json").read_text())
    assert "animal_name" not in state["columns"] and state["columns"]["legs"]["kind"] == "number"


def test_salaries_are_a_regression_in_dollars(tmp_path):
    path = write_salary_csv(tmp_path / "salaries.csv")
    result = train(compose_config(tmp_path / "run", "experiment=salary", f"data.path={path}", "trainer.max_epochs=80"))
    metrics = result["metrics"]
    assert metrics["test/r2"] > 0.8
    assert 1_000 < metrics["test/mae"] < 30_000  # in dollars, not in standardised units
    assert metrics["test/loss"] < 1  # the network learns the standardised target
    assert (tmp_path / "run" / "figures" / "predicted_vs_actual.png").is_file()
    assert "figures/predicted_vs_actual" in read_events(tmp_path / "run").Tags()["images"]
    assert curve(tmp_path / "run", "test/r2") == [pytest.approx(metrics["test/r2"], abs=1e-5)]


def test_preprocessing_is_fitted_on_the_training_rows_only(tmp_path):
    path = write_salary_csv(tmp_path / "salaries.csv")
    module = table(tmp_path, "experiment=salary", f"data.path={path}")
    assert module.kind == "regression" and module.dropped_rows == 12  # every 25th row has no salary
    rows = [line.split(",") for line in path.read_text().splitlines()[1:]]
    rows = [row for row in rows if row[7]]
    years = np.array([float(row[1]) for row in rows])
    salaries = np.array([float(row[7]) for row in rows])
    train_rows = split_indices(len(rows), 0.15, 0.15, seed=0)["train"].numpy()  # a regression: not stratified
    state = module.preprocessing.state
    assert state["columns"]["work_year"]["mean"] == pytest.approx(years[train_rows].mean())
    assert state["target_mean"] == pytest.approx(salaries[train_rows].mean())
    assert state["target_mean"] != pytest.approx(salaries.mean())  # the held-out rows were not looked at
    assert state["columns"]["experience_level"]["categories"] == ["EN", "EX", "MI", "SE"]
    x, y = module.splits["train"]
    assert y.mean().item() == pytest.approx(0, abs=1e-5) and y.std(unbiased=False).item() == pytest.approx(1, abs=1e-4)
    categories = [len(column.get("categories", [0])) for column in state["columns"].values()]
    assert len(categories) == 8 and x.shape[1] == sum(categories)  # numbers: 1 column each; categories one-hot
    assert 40 < len(state["columns"]["employee_residence"]["categories"]) <= 64  # those of the training rows


def test_label_encoding_is_one_column_per_text_column(tmp_path):
    path = write_salary_csv(tmp_path / "salaries.csv")
    module = table(tmp_path, "experiment=salary", f"data.path={path}", "data.encoding=label")
    assert module.splits["train"][0].shape[1] == 8  # the 8 feature columns


def test_a_category_never_seen_in_training_sets_no_column(caplog):
    train_rows = pd.DataFrame({"colour": pd.Categorical(["red", "blue", "red"])})
    for encoding, expected in (("onehot", [[0.0, 0.0]]), ("label", [[0.0]])):
        target = pd.Series(["a", "b", "a"])
        fitted = Preprocessing.fit(train_rows, np.arange(3), target, "classification", ["a", "b"], encoding, 50)
        assert fitted.transform(pd.DataFrame({"colour": pd.Categorical(["green"])})).tolist() == expected
    assert "['green'] never seen in training" in caplog.text


def test_the_task_is_inferred_from_the_target_and_can_be_forced(tmp_path):
    path = write_salary_csv(tmp_path / "salaries.csv")
    assert table(tmp_path, "experiment=salary", f"data.path={path}").kind == "regression"
    remote = table(tmp_path, "experiment=salary", f"data.path={path}", "data.target=remote_ratio")
    assert remote.kind == "classification" and remote.class_names == ["0", "50", "100"]  # 3 numbers: classes
    forced = table(
        tmp_path, "experiment=salary", f"data.path={path}", "data.target=remote_ratio", "data.task=regression"
    )
    assert forced.kind == "regression"
    with pytest.raises(DataError, match="target column holds text \\('Data"):
        table(tmp_path, "experiment=salary", f"data.path={path}", "data.target=job_title", "data.task=regression")
    cfg = compose_config(tmp_path / "run", "experiment=salary", f"data.path={path}", "task=classification")
    with pytest.raises(ConfigError, match="or data.task=classification to read the target as classification"):
        build(cfg)


def test_a_columns_kind_does_not_depend_on_the_split(tmp_path):
    path = tmp_path / "late_text.csv"
    rows = [f"{i % 7},{'many' if i >= 1000 else i % 5},{'ab'[i % 2]}" for i in range(1200)]  # texts after row 1000
    path.write_text("size,legs,type\n" + "\n".join(rows) + "\n")
    for seed in range(3):
        module = table(tmp_path, "data=csv", f"data.path={path}", "data.target=type", f"data.seed={seed}")
        assert module.preprocessing.state["columns"]["legs"]["kind"] == "category"
        assert module.preprocessing.state["columns"]["legs"]["categories"] == ["0", "1", "2", "3", "4", "many"]


def test_many_classes_of_few_rows_split_without_stratifying(tmp_path):
    path = tmp_path / "many.csv"
    path.write_text("x,y\n" + "\n".join(f"{i},c{i % 20}" for i in range(100)) + "\n")  # 20 classes x 5 rows
    module = table(tmp_path, "data=csv", f"data.path={path}", "data.target=y", "data.max_categories=50")
    assert module.num_classes == 20 and sum(len(split[1]) for split in module.splits.values()) == 100


def test_a_regression_target_with_text_is_refused_at_evaluation_too():
    state = {"columns": {"x": {"kind": "number", "median": 0.0, "mean": 0.0, "std": 1.0}}, "encoding": "onehot",
             "kind": "regression", "classes": [], "target_mean": 0.0, "target_std": 1.0}  # fmt: skip
    with pytest.raises(DataError, match="target column holds text \\('\\$100'\\)"):
        Preprocessing(state).encode_target(pd.Series(["5", "$100"], dtype="category"))


def test_two_classes_train_one_logit_with_bce(tmp_path):
    result = train(compose_config(tmp_path / "run", "experiment=breast_cancer", "trainer.max_epochs=30"))
    checkpoint = torch.load(result["best_checkpoint"], weights_only=True)
    assert checkpoint["state_dict"]["net.head.weight"].shape[0] == 1
    assert result["metrics"]["test/acc"] >= 0.9


@pytest.mark.parametrize("experiment, metric, threshold", [("iris", "test/acc", 0.9), ("wine", "test/acc", 0.9)])
def test_bundled_tables_train_to_a_sensible_metric(tmp_path, experiment, metric, threshold):
    assert train(compose_config(tmp_path / "run", f"experiment={experiment}"))["metrics"][metric] >= threshold


def test_diabetes_is_a_regression(tmp_path):
    result = train(compose_config(tmp_path / "run", "experiment=diabetes"))
    assert result["metrics"]["test/r2"] > 0.15 and result["metrics"]["test/mae"] > 10  # in the target's units


def test_multilinear_regression_recovers_its_weights(tmp_path):
    cfg = compose_config(tmp_path / "run", "experiment=multilinear", "data.weights=[2.0,-1.0,0.5]", "data.bias=3.0")
    result = train(cfg)
    learned, true = result["metrics"], result["reference_parameters"]
    assert true == {"head.weight.0": 2.0, "head.weight.1": -1.0, "head.weight.2": 0.5, "head.bias": 3.0}
    for name, value in true.items():
        assert abs(learned[f"params/{name}"] - value) < 0.1, name
    assert len(read_events(tmp_path / "run").Scalars("params/head.weight.1")) == 30  # one value per epoch
    assert (tmp_path / "run" / "figures" / "predicted_vs_actual.png").is_file()


def test_the_whole_table_as_one_batch_is_full_batch_gradient_descent(tmp_path):
    module = table(tmp_path, "experiment=multilinear", "data.batch_size=800")
    assert len(module.train_dataloader()) == 1


def test_evaluation_applies_the_preprocessing_training_fitted(tmp_path):
    path = write_salary_csv(tmp_path / "salaries.csv")
    result = train(compose_config(tmp_path / "run", "experiment=salary", f"data.path={path}", "trainer.max_epochs=5"))
    other = write_salary_csv(tmp_path / "other.csv", seed=1, shift=50_000)  # richer: other means and spreads
    process = commands.run(
        [sys.executable, "-m", "hyperlab", "eval", f"ckpt_path={result['best_checkpoint']}", f"data.path={other}",
         f"paths.log_dir={tmp_path}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert process.returncode == 0, process.stderr[-2000:]
    folder = Path(process.stdout.strip().splitlines()[-1].removeprefix("results: "))
    used = json.loads((folder / "preprocessing.json").read_text())
    assert used == json.loads((tmp_path / "run" / "preprocessing.json").read_text())
    assert json.loads((folder / "metrics.json").read_text())["metrics"]["test/mae"] > 30_000  # the shift shows


def predict_rows(checkpoint: str, table: Path, *options: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "hyperlab", "predict", f"ckpt_path={checkpoint}", f"table={table}", *options]
    return commands.run(command, capture_output=True, text=True, timeout=300)


def test_prediction_adds_a_class_to_every_row_of_a_new_table(tmp_path):
    result = train(
        compose_config(tmp_path / "run", "experiment=animals", f"data.path={write_animals_csv(tmp_path / 'a.csv')}")
    )
    new = write_animals_csv(tmp_path / "new.csv", rows=60, seed=1)
    truth = [line.split(",")[-1] for line in new.read_text().splitlines()[1:]]
    without_target = tmp_path / "no_type.csv"  # what a user has: no answers; columns in another order
    without_target.write_text(
        "\n".join(",".join(reversed(line.split(",")[:-1])) for line in new.read_text().splitlines()) + "\n"
    )
    process = predict_rows(result["best_checkpoint"], without_target)
    assert process.returncode == 0, process.stderr[-2000:]
    rows = list(csv.DictReader(io.StringIO(process.stdout)))
    assert len(rows) == 60 and list(rows[0])[-2:] == ["predicted", "probability"]
    assert rows[0]["animal_name"] == "animal0"  # the row's own columns come first
    assert np.mean([row["predicted"] == kind for row, kind in zip(rows, truth, strict=True)]) >= 0.85
    assert all(0.33 <= float(row["probability"]) <= 1 for row in rows)


def test_prediction_of_a_regression_is_in_the_targets_units(tmp_path):
    path = write_salary_csv(tmp_path / "salaries.csv")
    result = train(compose_config(tmp_path / "run", "experiment=salary", f"data.path={path}", "trainer.max_epochs=80"))
    process = predict_rows(result["best_checkpoint"], path)
    assert process.returncode == 0, process.stderr[-2000:]
    rows = [row for row in csv.DictReader(io.StringIO(process.stdout)) if row["salary_in_usd"]]
    errors = [abs(float(row["predicted"]) - float(row["salary_in_usd"])) for row in rows]
    assert np.median(errors) < 20_000  # dollars (the salaries are 40k to 200k)


def test_prediction_refuses_a_table_for_an_image_model_and_a_missing_column(tmp_path):
    digits = train(compose_config(tmp_path / "digits", "experiment=digits", "trainer.max_epochs=1"))
    table = write_animals_csv(tmp_path / "a.csv")
    process = predict_rows(digits["best_checkpoint"], table)
    assert process.returncode == 2 and "was not trained on a table" in process.stderr
    animals = train(
        compose_config(tmp_path / "animals", "experiment=animals", f"data.path={table}", "trainer.max_epochs=1")
    )
    no_legs = tmp_path / "no_legs.csv"
    no_legs.write_text("hair,feathers\n1,0\n")
    process = predict_rows(animals["best_checkpoint"], no_legs)
    assert process.returncode == 2 and "no column 'eggs'" in process.stderr, process.stderr


def bad_files(tmp_path: Path) -> dict[str, tuple[Path, list[str], str]]:
    good = write_animals_csv(tmp_path / "animal.csv")
    single = tmp_path / "single.csv"
    single.write_text("a,b\n" + "".join(f"{i},x\n" for i in range(12)))
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    header = tmp_path / "header.csv"
    header.write_text("a,b,type\n")
    few = tmp_path / "few.csv"
    few.write_text("legs,type\n2,bird\n4,mammal\n0,reptile\n")
    repeated = tmp_path / "repeated.csv"
    repeated.write_text("legs,legs,type\n1,2,bird\n")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("name,legs,type\nb\xe9b\xe9,2,bird\n".encode("latin-1"))
    lines = good.read_text().splitlines()
    infinite = tmp_path / "infinite.csv"
    row = lines[5].split(",")
    row[-2] = "inf"  # the tail column of line 6
    infinite.write_text("\n".join([*lines[:5], ",".join(row), *lines[6:]]) + "\n")
    junk = tmp_path / "junk.csv"
    row = lines[7].split(",")
    row[6] = "four"  # legs: a text among numbers
    junk.write_text("\n".join([*lines[:7], ",".join(row), *lines[8:]]) + "\n")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("\n".join([*lines[:3], lines[3] + ",1,2", *lines[4:]]) + "\n")
    return {
        "missing file": (tmp_path / "nope.csv", [], "no table file at .*nope.csv \\(data.path"),
        "no such target": (good, ["data.target=kind"], "data.target='kind' is not a column of .*: its columns are \\["),
        "single class": (single, ["data.target=b", "data.drop=[]"], "single class"),
        "uncodable text": (good, ["data.drop=[]"], "column 'animal_name' has 1\\d\\d different texts .* data.drop="),
        "empty file": (empty, [], "is empty"),
        "header only": (header, [], "has a header but no rows"),
        "too few rows": (few, ["data.drop=[]"], "3 rows with a target: too few to split"),
        "repeated column": (repeated, ["data.drop=[]"], "names a column more than once: \\['legs'\\]"),
        "not UTF-8": (
            latin,
            ["data.drop=[]"],
            "is not utf-8 text \\(invalid continuation byte at byte 16\\): give its "
            "encoding, e.g. data.file_encoding=latin-1",
        ),
        "infinite number": (
            infinite,
            [],
            "column 'tail' holds inf in row 5 \\(after the header\\): infinite values are not allowed",
        ),
        "junk among numbers": (
            junk,
            [],
            "column 'legs' holds numbers but 'four' in row 7 \\(after the header\\) and 0 "
            "other cell\\(s\\): if it means a missing value, list it in data.na_values",
        ),
        "ragged row": (
            ragged,
            [],
            "is not a readable CSV file: Error tokenizing data. C error: Expected 9 fields in line 4, saw 11",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing file",
        "no such target",
        "single class",
        "uncodable text",
        "empty file",
        "header only",
        "too few rows",
        "repeated column",
        "not UTF-8",
        "infinite number",
        "junk among numbers",
        "ragged row",
    ],
)
def test_bad_tables_are_refused_before_training(tmp_path, case):
    path, overrides, message = bad_files(tmp_path)[case]
    cfg = compose_config(tmp_path / "run", "experiment=animals", f"data.path={path}", *overrides)
    with pytest.raises(DataError, match=message):
        build(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize(
    ("column", "spec", "problem"),
    [
        ("legs", {"kind": "number", "median": "x", "mean": 0.0, "std": 1.0}, "'legs': median, mean, std must be"),
        ("legs", {"kind": {"_target_": "os.system"}}, "CSVDataModule.columns.legs.kind._target_ is not allowed"),
        ("hair", {"kind": "category", "categories": [1, 2]}, "'hair': categories must be texts"),
        ("hair", {"kind": "category", "categories": ["0", "1", "2"]}, "gives 9 inputs, its network takes [7]"),
        ("legs", {"kind": "number", "median": 1.0, "mean": 0.0, "std": 1.0, "categories": ["a"]}, "'legs': keys"),
    ],
)
def test_a_checkpoints_table_preprocessing_must_have_the_shape_training_writes(tmp_path, column, spec, problem):
    result = train(compose_config(tmp_path / "run", "experiment=animals", "trainer.max_epochs=1", "logger=none",
                                  f"data.path={write_animals_csv(tmp_path / 'a.csv')}"))  # fmt: skip
    checkpoint = torch.load(result["best_checkpoint"], weights_only=True)
    checkpoint["CSVDataModule"]["columns"][column] = spec
    torch.save(checkpoint, tmp_path / "crafted.ckpt")
    process = predict_rows(str(tmp_path / "crafted.ckpt"), tmp_path / "a.csv")
    assert process.returncode == 2 and "Traceback" not in process.stderr
    line = process.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and problem in line, line


def test_prediction_reads_the_table_as_it_is_told_and_holds_only_number_columns_to_the_junk_rule(tmp_path):
    path = tmp_path / "mixed.csv"
    rows = [f"{'few' if i % 3 == 0 else i % 4},{i % 2},{'ab'[i % 2]}" for i in range(150)]  # 'legs': categories
    path.write_text("legs,size,type\n" + "\n".join(rows) + "\n")
    result = train(compose_config(tmp_path / "run", "data=csv", f"data.path={path}", "data.target=type",
                                  "trainer.max_epochs=1", "logger=none"))  # fmt: skip
    new = tmp_path / "new.csv"  # semicolons, latin-1, and 'legs' numbers but one 'few' (junk, were it numbers)
    new.write_bytes(b"legs;size;note\n" + "".join(
        f"{'few' if i == 3 else i % 4};{i % 2};caf\xe9\n" for i in range(30)).encode("latin-1"))  # fmt: skip
    process = predict_rows(result["best_checkpoint"], new)
    assert process.returncode == 2 and "is not utf-8 text" in process.stderr and "Traceback" not in process.stderr
    process = predict_rows(result["best_checkpoint"], new, "file_encoding=latin-1")
    assert process.returncode == 0, process.stderr[-2000:]
    predicted = list(csv.DictReader(io.StringIO(process.stdout)))
    assert len(predicted) == 30 and predicted[0]["note"] == "caf\xe9" and predicted[0]["predicted"] in ("a", "b")
    process = predict_rows(result["best_checkpoint"], new, "sep=';;'")
    assert process.returncode == 2 and "sep=';;' is not allowed" in process.stderr.strip().splitlines()[-1]
