"""k-fold cross-validation (`data.folds=K`, `data.fold=i`) for tables, image folders and the digits: the K
validation folds are disjoint and cover what the test split leaves, the test split is the one without folds, the
folds are stratified by class, preprocessing is fitted on each run's training folds, and bad values are refused in
one line naming the key."""

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import compose_config, write_image_folder
from hydra.utils import instantiate

from hyperlab.config import validate
from hyperlab.data.base import split_indices
from hyperlab.errors import ConfigError
from hyperlab.evaluate import evaluate
from hyperlab.train import train

SPLITS = ("train", "val", "test")
CLASSES = {"a": 60, "b": 30, "c": 15}  # uneven, so that stratification shows


def write_classes_csv(path: Path) -> Path:
    """A classification table: a row id (a number column: standardised, so the row can be read back), a noisy
    feature and a class of uneven sizes."""
    rng = np.random.default_rng(0)
    labels = rng.permutation([name for name, count in CLASSES.items() for _ in range(count)])
    lines = ["id,feature,label"] + [f"{i},{rng.normal():.4f},{label}" for i, label in enumerate(labels)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_values_csv(path: Path, rows: int = 80) -> Path:
    """A regression table: a row id, a feature and a target of many values."""
    rng = np.random.default_rng(1)
    lines = ["id,feature,value"] + [f"{i},{rng.normal():.4f},{rng.normal(50, 10):.3f}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def datamodule(tmp_path: Path, *overrides: str):
    module = instantiate(compose_config(tmp_path / "run", *overrides).data, _convert_="all")
    module.setup("fit")
    return module


def table_ids(module) -> dict[str, set[int]]:
    """Each split's row ids, read back from the standardised id column with the fitted mean and spread."""
    state = module.preprocessing.state["columns"]["id"]
    ids = {split: module.splits[split][0][:, 0].double() * state["std"] + state["mean"] for split in SPLITS}
    return {split: set(values.round().long().tolist()) for split, values in ids.items()}


def table_module(tmp_path: Path, path: Path, target: str, *overrides: str):
    return datamodule(tmp_path, "data=csv", f"data.path={path}", f"data.target={target}", *overrides)


def check_folds_cover_the_rest(folds: list[dict[str, set[int]]], plain: dict[str, set[int]]) -> None:
    """Disjoint validation folds that together are every row but the test rows, which are the plain split's."""
    vals = [fold["val"] for fold in folds]
    assert sum(len(val) for val in vals) == len(set().union(*vals))  # disjoint
    rest = plain["train"] | plain["val"]
    assert set().union(*vals) == rest
    for fold in folds:
        assert fold["test"] == plain["test"]
        assert fold["train"] == rest - fold["val"]


def test_classification_folds_are_disjoint_stratified_and_keep_the_test_rows(tmp_path):
    path = write_classes_csv(tmp_path / "classes.csv")
    plain = table_ids(table_module(tmp_path, path, "label"))
    modules = [table_module(tmp_path, path, "label", "data.folds=5", f"data.fold={i}") for i in range(5)]
    folds = [table_ids(module) for module in modules]
    check_folds_cover_the_rest(folds, plain)
    rest_counts = torch.bincount(torch.cat([modules[0].splits[s][1] for s in ("train", "val")]), minlength=3)
    for module in modules:
        counts = torch.bincount(module.splits["val"][1], minlength=3)
        assert (counts.double() - rest_counts.double() / 5).abs().max() <= 1, counts  # stratified
        assert module.class_names == list(CLASSES)


def test_regression_folds_are_disjoint_and_cover_the_rest(tmp_path):
    path = write_values_csv(tmp_path / "values.csv")
    plain = table_ids(table_module(tmp_path, path, "value"))
    modules = [table_module(tmp_path, path, "value", "data.folds=4", f"data.fold={i}") for i in range(4)]
    assert modules[0].kind == "regression"
    folds = [table_ids(module) for module in modules]
    check_folds_cover_the_rest(folds, plain)
    sizes = [len(fold["val"]) for fold in folds]
    assert max(sizes) - min(sizes) <= 1


def test_preprocessing_is_fitted_on_each_runs_training_folds(tmp_path):
    path = write_values_csv(tmp_path / "values.csv")
    table = np.loadtxt(path, delimiter=",", skiprows=1)
    means = []
    for fold in range(3):
        module = table_module(tmp_path, path, "value", "data.folds=3", f"data.fold={fold}")
        train = sorted(table_ids(module)["train"])
        state = module.preprocessing.state
        assert state["columns"]["feature"]["mean"] == pytest.approx(table[train, 1].mean())
        assert state["columns"]["feature"]["std"] == pytest.approx(table[train, 1].std())
        assert state["target_mean"] == pytest.approx(table[train, 2].mean())
        means.append(state["columns"]["feature"]["mean"])
    assert len(set(means)) == 3  # each run its own rows


def images_of(module, split: str) -> Counter:
    """A split's images, by their bytes (a multiset: a data set may hold the same image twice)."""
    return Counter(image.numpy().tobytes() for image in module.splits[split][0])


def check_image_folds(modules: list, plain) -> None:
    rest = images_of(plain, "train") + images_of(plain, "val")
    assert sum((images_of(module, "val") for module in modules), Counter()) == rest  # disjoint, and covering
    for module in modules:
        assert images_of(module, "test") == images_of(plain, "test")
        assert images_of(module, "train") + images_of(module, "val") == rest


def test_image_folders_and_digits_honour_the_folds(tmp_path):
    folder = write_image_folder(tmp_path / "shapes", per_class=10)
    images = ("data=image_folder", f"data.path={folder}", "data.image_size=8")
    modules = [datamodule(tmp_path, *images, "data.folds=3", f"data.fold={i}") for i in range(3)]
    check_image_folds(modules, datamodule(tmp_path, *images))
    for module in modules:  # 10 a class: 8 or 9 left by the test split, 2 or 3 in each fold
        assert set(torch.bincount(module.splits["val"][1], minlength=3).tolist()) <= {2, 3}
    modules = [datamodule(tmp_path, "experiment=digits", "data.folds=4", f"data.fold={i}") for i in range(4)]
    check_image_folds(modules, datamodule(tmp_path, "experiment=digits"))


def test_a_class_too_small_for_the_folds_falls_back_to_plain_folds():
    labels = torch.tensor([0] * 40 + [1] * 3)
    folds = [split_indices(43, 0.15, 0.15, 0, labels, folds=5, fold=i) for i in range(5)]
    vals = torch.cat([fold["val"] for fold in folds])
    assert sorted(vals.tolist()) == sorted(torch.cat([folds[0]["train"], folds[0]["val"]]).tolist())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.folds=1"], r"data.folds=1 is not allowed: expected null \(no cross-validation: val_fraction\) or an"),
        (["data.folds=5", "data.fold=5"], r"data.fold=5 is not allowed: expected an integer from 0 to 4"),
        (["data.folds=5", "data.fold=-1"], r"data.fold=-1 is not allowed: expected an integer from 0 to 4"),
        (["data.fold=1"], r"data.fold=1 is not allowed: expected 0 without data.folds"),
        (["data.folds=2.5"], r"data.folds=2.5 is not allowed: expected"),
    ],
)
def test_bad_folds_are_refused_in_one_line_naming_the_key(make_config, overrides, message):
    for data in (["experiment=digits"], ["experiment=iris"], ["data=image_folder", "data.path=images"]):
        with pytest.raises(ConfigError, match=f"^{message}") as error:
            validate(make_config(*data, *overrides))
        assert "\n" not in str(error.value)


def test_more_folds_than_rows_left_are_refused_naming_the_key(tmp_path):
    path = write_values_csv(tmp_path / "values.csv", rows=12)  # 2 test rows, 10 left
    with pytest.raises(ConfigError, match=r"^data.folds=11 is not allowed: expected at most 10 ") as error:
        table_module(tmp_path, path, "value", "data.folds=11")
    assert "\n" not in str(error.value)
    assert len(table_module(tmp_path, path, "value", "data.folds=10", "data.fold=9").splits["val"][1]) == 1


def test_a_fold_runs_checkpoint_is_evaluated_on_its_test_rows(tmp_path):
    overrides = ("experiment=iris", "data.folds=3", "data.fold=2", "trainer.max_epochs=1")
    result = train(compose_config(tmp_path / "run", *overrides))
    evaluated = evaluate(result["best_checkpoint"], [f"paths.log_dir={tmp_path / 'eval'}"])
    assert evaluated["metrics"]["test/acc"] == pytest.approx(result["metrics"]["test/acc"])
