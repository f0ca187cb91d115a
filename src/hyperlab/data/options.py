"""The options of hyperlab's datamodules, declared once, here, without torch: the config's check reads them before
torch is imported (hyperlab.options.declared_options), and each datamodule builds itself from them (its options
become its attributes: `self.batch_size`). conf/data/<option>.yaml holds their values, a comment on each.

A class's options are its base class's and its own (a table's: every datamodule's batching, a table's, a CSV file's);
`check_options` checks their ranges, its base class's first."""

from dataclasses import dataclass
from typing import ClassVar

from hyperlab.data.functions import FUNCTIONS
from hyperlab.options import Options, table_reading_checks

DATASETS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}  # data.dataset: torchvision's class for each
SKLEARN_TABLES = ("iris", "wine", "breast_cancer", "diabetes")  # data.name: scikit-learn's `load_<name>`
IMAGE_MODES = {1: "L", 3: "RGB"}  # data.channels: the PIL mode of each
IMAGE_SIZES = (4, 1024)  # data.image_size: the image sizes allowed, pixels a side
CLASS_NAME_CHARACTERS = 200  # the longest class name allowed (a table's target value, a class folder's name)


@dataclass(frozen=True, kw_only=True)
class TensorDataModuleOptions:
    """Every datamodule's: how its splits are served in batches (hyperlab.data.TensorDataModule)."""

    batch_size: int
    eval_batch_size: int
    batches_per_step: int
    seed: int
    shuffle_seed: int

    @classmethod
    def check_options(cls, options: Options) -> None:
        """The ranges of the batching options, and of the held-out fractions of a datamodule that takes them."""
        options.require("batch_size", options.batch_size >= 1, "an integer >= 1")
        options.require("eval_batch_size", options.eval_batch_size >= 1, "an integer >= 1")
        options.require("batches_per_step", options.batches_per_step >= 1, "an integer >= 1")
        if "val_fraction" in options:
            options.require("val_fraction", 0 < options.val_fraction < 1, "a fraction in (0, 1)")
        if "test_fraction" in options:
            options.require("test_fraction", 0 < options.test_fraction < 1, "a fraction in (0, 1)")
            fits = options.val_fraction + options.test_fraction < 1
            options.require("test_fraction", fits, "val_fraction + test_fraction < 1")
        if "folds" in options:
            check_folds(options)


def check_folds(options: Options) -> None:
    """k-fold cross-validation: K >= 2 folds (one would leave nothing to train on), and a fold among them; without
    folds, fold stays 0 (a fold > 0 would silently run the usual split again)."""
    folds, fold = options.folds, options.fold
    options.require("folds", folds is None or folds >= 2, "null (no cross-validation: val_fraction) or an integer >= 2")
    if folds is None:
        options.require("fold", fold == 0, "0 without data.folds (data.folds=K for k-fold cross-validation)")
    else:
        options.require("fold", 0 <= fold < folds, f"an integer from 0 to {folds - 1} (data.folds={folds})")


@dataclass(frozen=True, kw_only=True)
class HeldOutOptions(TensorDataModuleOptions):
    """The shares of the data held out for validation and testing (checked by TensorDataModuleOptions.check_options)."""

    val_fraction: float
    test_fraction: float


@dataclass(frozen=True, kw_only=True)
class FoldedSplitOptions(HeldOutOptions):
    """The held-out splits of a datamodule that also offers k-fold cross-validation (digits, image folders, tables)."""

    folds: int | None = None  # (defaults as conf/data/'s: a run stored before folds existed is read as it was)
    fold: int = 0


@dataclass(frozen=True, kw_only=True)
class DigitsDataModuleOptions(FoldedSplitOptions):
    pass


@dataclass(frozen=True, kw_only=True)
class LineDataModuleOptions(HeldOutOptions):
    num_points: int
    gradient: float
    intercept: float
    noise: float
    x_max: float

    @classmethod
    def check_options(cls, options: Options) -> None:
        super().check_options(options)
        options.require("num_points", options.num_points >= 10, "an integer >= 10")
        options.require("noise", options.noise >= 0, "a number >= 0")
        options.require("x_max", options.x_max > 0, "a number > 0")


@dataclass(frozen=True, kw_only=True)
class BlobsDataModuleOptions(HeldOutOptions):
    num_samples: int
    num_classes: int
    class_sep: float

    @classmethod
    def check_options(cls, options: Options) -> None:
        super().check_options(options)
        options.require("num_samples", options.num_samples >= 30, "an integer >= 30")
        options.require("num_classes", 2 <= options.num_classes <= 4, "an integer from 2 to 4 (two features)")
        options.require("class_sep", options.class_sep > 0, "a number > 0")


@dataclass(frozen=True, kw_only=True)
class MultilinearDataModuleOptions(HeldOutOptions):
    num_samples: int
    num_features: int
    weights: list[float] | None
    bias: float
    noise: float

    @classmethod
    def check_options(cls, options: Options) -> None:
        super().check_options(options)
        options.require("num_samples", options.num_samples >= 20, "an integer >= 20")
        options.require("num_features", 1 <= options.num_features <= 16, "an integer from 1 to 16")
        fits = options.weights is None or len(options.weights) == options.num_features
        options.require("weights", fits, f"null or a list of num_features={options.num_features} numbers")
        options.require("noise", options.noise >= 0, "a number >= 0")


@dataclass(frozen=True, kw_only=True)
class MNISTDataModuleOptions(TensorDataModuleOptions):
    dataset: str
    root: str
    download: bool
    val_fraction: float
    classes: list[int] | None
    augment: bool
    augment_degrees: float
    augment_translate: float

    @classmethod
    def check_options(cls, options: Options) -> None:
        super().check_options(options)
        options.require("dataset", options.dataset in DATASETS, f"one of {list(DATASETS)}")
        chosen = options.classes or list(range(10))
        distinct = len(set(chosen)) == len(chosen) >= 2 and set(chosen) <= set(range(10))
        options.require("classes", distinct, "null (all ten) or at least two different classes from 0 to 9")
        options.require("augment_degrees", 0 <= options.augment_degrees <= 180, "degrees in [0, 180]")
        share = 0 <= options.augment_translate <= 0.5
        options.require("augment_translate", share, "a share of the size in [0, 0.5]")


@dataclass(frozen=True, kw_only=True)
class CIFAR10DataModuleOptions(TensorDataModuleOptions):
    root: str
    download: bool
    val_fraction: float
    augment: bool
    augment_padding: int = 4

    @classmethod
    def check_options(cls, options: Options) -> None:
        super().check_options(options)
        options.require("augment_padding", 0 <= options.augment_padding <= 16, "pixels in [0, 16]")


@dataclass(frozen=True, kw_only=True)
class ImageFolderDataModuleOptions(FoldedSplitOptions):
    path: str
    image_size: int
    channels: int

    @classmethod
    def check_options(cls, options: Options) -> None:
        super().check_options(options)
        fits = IMAGE_SIZES[0] <= options.image_size <= IMAGE_SIZES[1]
        options.require("image_size", fits, f"an integer in [{IMAGE_SIZES[0]}, {IMAGE_SIZES[1]}] (pixels a side)")
        options.require("channels", options.channels in IMAGE_MODES, "1 (grey) or 3 (RGB)")


@dataclass(frozen=True, kw_only=True)
class TableDataModuleOptions(FoldedSplitOptions):
    """A table's (hyperlab.data.tables.TableDataModule, the base of the two below)."""

    task: str
    encoding: str
    max_categories: int

    @classmethod
    def check_options(cls, options: Options) -> None:
        super().check_options(options)
        kinds = ["auto", "classification", "regression"]
        options.require("task", options.task in kinds, f"one of {kinds}")
        onehot_or_label = options.encoding in ("onehot", "label")
        options.require("encoding", onehot_or_label, "one of ['onehot', 'label'] (a file's text encoding is "
                        "data.file_encoding)")  # fmt: skip
        options.require("max_categories", options.max_categories >= 2, "an integer >= 2")


@dataclass(frozen=True, kw_only=True)
class CSVDataModuleOptions(TableDataModuleOptions):
    path: str
    target: str
    drop: list[str]
    # (defaults as conf/data/csv.yaml's: a run stored before these options existed is read as it was)
    sep: str | None = None
    file_encoding: str = "utf-8"
    na_values: list[str] = ("?",)  # type: ignore[assignment]
    decimal: str = "."

    @classmethod
    def check_options(cls, options: Options) -> None:
        super().check_options(options)
        for key, ok, allowed in table_reading_checks(options.sep, options.file_encoding, options.decimal):
            options.require(key, ok, allowed)


@dataclass(frozen=True, kw_only=True)
class SklearnTableDataModuleOptions(TableDataModuleOptions):
    name: str

    fixed_options: ClassVar[dict[str, object]] = {"encoding": "onehot", "max_categories": 2}  # every column is a number

    @classmethod
    def check_options(cls, options: Options) -> None:
        super().check_options(Options({**cls.fixed_options, **options}))
        options.require("name", options.name in SKLEARN_TABLES, f"one of {list(SKLEARN_TABLES)}")


@dataclass(frozen=True, kw_only=True)
class PlaygroundDataModuleOptions(TensorDataModuleOptions):
    """The optimizer playground's (hyperlab.data.playground): the function to minimise and where to start. One
    "sample" makes one step: the batching options are fixed (`fixed_options`), nothing to choose."""

    function: str
    start: list[float] | None

    fixed_options: ClassVar[dict[str, object]] = {
        "batch_size": 1,
        "eval_batch_size": 1,
        "batches_per_step": 1,
        "seed": 0,
        "shuffle_seed": 0,
    }

    @classmethod
    def check_options(cls, options: Options) -> None:
        super().check_options(Options({**cls.fixed_options, **options}))
        options.require("function", options.function in FUNCTIONS, f"one of {list(FUNCTIONS)}")
        dims = FUNCTIONS[options.function].dims
        fits = options.start is None or len(options.start) == dims
        options.require("start", fits, f"null (the function's own start) or a list of {dims} number(s), its x"
                        + (" and y" if dims == 2 else ""))  # fmt: skip
