"""Hostile and careless data files (issue 29): tables, image folders and class names that once crashed, hung,
exhausted memory or gave a wrong answer. Each is refused in one short line naming the file, or, for one bad image
among good ones, skipped by name; tiny files crafted here, read through the data modules' own functions, and two
a command run end to end."""

import csv
import decimal
import io
import logging
import os
import struct
import sys
import threading
import zlib
from pathlib import Path

import commands
import numpy as np
import pyarrow
import pyarrow.parquet as parquet
import pytest
import torch
from helpers import compose_config
from hydra.utils import instantiate
from matplotlib.backends.backend_agg import FigureCanvasAgg
from omegaconf import OmegaConf
from PIL import Image

from hyperlab.callbacks.figures import MAX_MATRIX_CLASSES, confused_pairs_figure, confusion_matrix_figure, errors_figure
from hyperlab.data import image_folder, table_files, tables
from hyperlab.data.options import CLASS_NAME_CHARACTERS
from hyperlab.errors import DataError
from hyperlab.predict import predict_command
from hyperlab.spreadsheet import spreadsheet_text
from hyperlab.train import train

MATH = ["$x^$", "a$b", "$\\frac{$", "=1+1"]  # names matplotlib would parse as math markup (and fail to)


def csv_module(tmp_path: Path, path: Path, *overrides: str):
    cfg = compose_config(tmp_path / "run", "data=csv", f"data.path={path}", "data.target=label", *overrides)
    return instantiate(cfg.data, _convert_="all")


def write_rows(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    return path


def labelled(path: Path, labels: list[str], extra: dict[int, str] | None = None) -> Path:
    """A table of 40 rows, one number column `x` (a row's cell from `extra` in its place) and `label`."""
    rows = [[(extra or {}).get(i, str(i % 7)), labels[i % len(labels)]] for i in range(40)]
    return write_rows(path, ["x", "label"], rows)


def one_short_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message and len(message) < 500, message[:1000]
    return message


# -- tables -------------------------------------------------------------------------------------------------------


def test_a_header_longer_than_the_sniffed_sample_is_read_whole(tmp_path):
    """The header was read from the first 65,536 characters: a name cut there was taken for another, and the table
    refused as naming a column twice."""
    header = ["p" * (table_files.SAMPLE_CHARACTERS - len(",c1,c10,c10")), "c1", "c10", "c100000", "label"]
    cut = next(csv.reader([",".join(header)[: table_files.SAMPLE_CHARACTERS]]))
    assert cut[-2:] == ["c10", "c10"]  # (what was read of it)
    rows = [[1, 2, 3, 4, "ab"[i % 2]] for i in range(12)]
    table = tables.read_table(write_rows(tmp_path / "wide.csv", header, rows), None, "utf-8", [])
    assert list(table.columns) == header and table.shape == (12, 5)


def test_too_many_columns_and_a_too_long_header_are_refused_in_one_line(tmp_path, monkeypatch):
    wide = write_rows(tmp_path / "wide.csv", [f"c{i}" for i in range(table_files.MAX_COLUMNS + 1)], [[1] * 10_001])
    with pytest.raises(DataError, match="wide.csv is refused: it has 10,001 columns, and a table has at most 10,000"):
        tables.read_table(wide, None, "utf-8", [])
    monkeypatch.setattr(table_files, "MAX_COLUMNS", 5)
    parquet.write_table(pyarrow.table({f"c{i}": [1, 2] for i in range(6)}), tmp_path / "wide.parquet")
    with pytest.raises(DataError, match="wide.parquet is refused: it has 6 columns, and a table has at most 5"):
        tables.read_table(tmp_path / "wide.parquet", None, "utf-8", [])
    monkeypatch.setattr(table_files, "HEADER_CHARACTERS", 1_000)
    long = write_rows(tmp_path / "long.csv", [f"column_{i}" for i in range(5)], [list(range(5))])
    long.write_text("x" * 2_000 + long.read_text())
    with pytest.raises(DataError) as error:
        tables.read_table(long, None, "utf-8", [])
    assert "long.csv is refused: its header row is longer than 1,000 characters" in one_short_line(error)


HUGE = "j" * 1_000_000  # a megabyte of junk in one cell
LONG = "n" * 100_000  # a column name (the CSV reader takes at most 131,072 characters for one)


@pytest.mark.parametrize(
    "case",
    ["junk cell", "class name", "column name", "symlink loop"],
)
def test_a_hostile_table_is_refused_in_one_short_line_naming_the_file(tmp_path, case):
    """A cell or name is quoted in at most ~80 characters; a 1 MB junk cell made a 2 MB one-line message."""
    if case == "junk cell":  # numbers but for one text: junk, quoted
        path, expected = labelled(tmp_path / "t.csv", ["a", "b"], {5: HUGE}), f"holds numbers but '{'j' * 80}'..."
    elif case == "class name":
        path = labelled(tmp_path / "t.csv", ["a", "b", "x" * (CLASS_NAME_CHARACTERS + 1)])
        expected = f"(the target) holds '{'x' * 80}'... (201 characters) in row 3 (after the header): a class name is"
    elif case == "column name":  # a text column of many values: not categories, its name quoted
        rows = [[f"v{i}", "ab"[i % 2]] for i in range(40)]
        path, expected = write_rows(tmp_path / "t.csv", [LONG, "label"], rows), "(100,000 characters) has 28"
        expected += " different texts in 28 training rows"
    else:
        path, expected = tmp_path / "t.csv", "(Too many levels of symbolic links)"
        path.symlink_to(path)
    with pytest.raises(DataError) as error:
        csv_module(tmp_path, path).setup("fit")
    message = one_short_line(error)
    assert expected in message and ("t.csv" in message or case == "column name"), message


def test_parquet_decimals_are_numbers_and_a_column_of_nulls_is_missing_numbers(tmp_path):
    """pandas held decimals as Python Decimals (taken for texts) and a null column as Nones (an IndexError)."""
    values = [decimal.Decimal(i) / 4 for i in range(40)]
    columns = {"price": pyarrow.array(values, pyarrow.decimal128(6, 2)), "nothing": pyarrow.nulls(40),
               "label": pyarrow.array(["ab"[i % 2] for i in range(40)])}  # fmt: skip
    parquet.write_table(pyarrow.table(columns), tmp_path / "t.parquet")
    module = csv_module(tmp_path, tmp_path / "t.parquet")
    features, _ = module.read_table()
    assert features["price"].dtype == np.float64 and features["price"].tolist() == [float(v) for v in values]
    assert features["nothing"].dtype == np.float64 and features["nothing"].isna().all()
    module.setup("fit")  # a CSV file's empty column is the same: numbers, every one missing (the median: 0)
    assert module.preprocessing.state["columns"]["nothing"] == {"kind": "number", "median": 0.0, "mean": 0.0,
                                                                "std": 1.0}  # fmt: skip


# -- image folders ------------------------------------------------------------------------------------------------


def png_declaring(width: int, height: int) -> bytes:
    """A 16-bit grey PNG whose header declares `width` x `height` pixels, and whose data is a few bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)
    data = chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + data + chunk(b"IEND", b"")


def dds_of_unknown_format() -> bytes:
    """A DDS file whose pixel format PIL knows of but cannot decode (NotImplementedError)."""
    pixel_format = struct.pack("<II4sIIIII", 32, 0x4, b"ZZZZ", 0, 0, 0, 0, 0)
    header = struct.pack("<IIIIIII", 124, 0x1007, 8, 8, 0, 0, 0) + b"\0" * 44 + pixel_format + b"\0" * 20
    return b"DDS " + header + b"\0" * 64


def finishes(function, seconds: float, fifo: Path):
    """`function()`'s result, or a failure if it is still waiting after `seconds` (a writer then frees the FIFO)."""
    result = {}

    def run() -> None:
        try:
            result["value"] = function()
        except BaseException as error:  # (raised below, in the test's thread)
            result["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        fifo.write_bytes(b"not an image")  # let the reader go, then fail
        thread.join(seconds)
        pytest.fail(f"reading the folder waited on the FIFO {fifo.name}")
    if "error" in result:
        raise result["error"]
    return result.get("value")


def test_bad_images_among_good_ones_are_skipped_by_name(tmp_path, monkeypatch, caplog):
    folder = tmp_path / "images"
    for name in ("circle", "square"):
        (folder / name).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(np.full((6, 6), 30 * i, dtype=np.uint8)).save(folder / name / f"{i}.png")
    Image.fromarray(np.full((40, 40), 60_000, dtype=np.uint16)).save(folder / "circle" / "deep.png")  # 1,600 pixels
    (folder / "circle" / "bomb.png").write_bytes(png_declaring(12_000, 12_000))  # a 300 KB file took 4.7 GB
    (folder / "square" / "texture.dds").write_bytes(dds_of_unknown_format())
    os.mkfifo(folder / "square" / "x.png")
    monkeypatch.setattr(image_folder, "MAX_PIXELS", 1_000)
    cfg = compose_config(tmp_path / "run", "data=image_folder", f"data.path={folder}", "data.image_size=6")
    module = instantiate(cfg.data, _convert_="all")
    with caplog.at_level(logging.WARNING, logger="hyperlab"):
        finishes(lambda: module.setup("fit"), 20, folder / "square" / "x.png")
    reasons = dict(reason.split(" (", 1) for reason in module.skipped)
    assert reasons.keys() == {"circle/bomb.png", "circle/deep.png", "square/texture.dds", "square/x.png"}
    assert reasons["circle/bomb.png"] == "12000 x 12000 pixels, more than the 1,000 an image may have)"
    assert reasons["circle/deep.png"] == "40 x 40 pixels, more than the 1,000 an image may have)"
    assert reasons["square/x.png"] == "not a regular file: a FIFO)"
    assert "skipped 4 unreadable file(s) of 20" in caplog.text
    assert sum(len(module.splits[split][1]) for split in ("train", "val", "test")) == 16


def test_a_folder_that_cannot_be_read_or_names_a_class_too_long_is_refused_in_one_line(tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    long = tmp_path / "long"
    for name in ("a", "b" * (CLASS_NAME_CHARACTERS + 1)):
        (long / name).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(np.full((4, 4), i, dtype=np.uint8)).save(long / name / f"{i}.png")
    expected = {loop: "loop (Too many levels of symbolic links) (data.path: a folder", long: "the class folder 'bbbb"}
    for folder, message in expected.items():
        cfg = compose_config(tmp_path / "run", "data=image_folder", f"data.path={folder}", "data.image_size=4")
        with pytest.raises(DataError) as error:
            instantiate(cfg.data, _convert_="all").setup("fit")
        assert message in one_short_line(error) and str(folder) in str(error.value)


# -- class names: figures, predictions ----------------------------------------------------------------------------


def drawn(figure) -> np.ndarray:
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())


def test_class_names_with_math_markup_are_drawn_as_plain_text():
    names = [*MATH, "n" * 5_000]
    targets, predictions = torch.arange(5).repeat(3), torch.arange(5).roll(1).repeat(3)
    probabilities = torch.nn.functional.one_hot(predictions, 5).float()
    drawn(confusion_matrix_figure(targets, predictions, names))
    drawn(confused_pairs_figure(targets, predictions, names, 5))
    drawn(errors_figure(torch.rand(15, 1, 6, 6), targets, probabilities, names, 4))


def test_a_confusion_matrix_of_too_many_classes_is_not_drawn_and_says_so():
    """1,200 classes made a 722-inch figure (a MemoryError); the pairs were picked from a 1,200 x 1,200 matrix."""
    names = [f"class {i}" for i in range(1_200)]
    targets = torch.arange(1_200).repeat(2)
    predictions = torch.where(torch.arange(2_400) % 3 == 0, (targets + 7) % 1_200, targets)
    figure = confusion_matrix_figure(targets, predictions, names)
    assert max(figure.get_size_inches()) < 10 and drawn(figure).shape[0] < 1_000
    said = " ".join(text.get_text() for text in figure.texts)
    assert f"1,200 classes: too many for a confusion matrix (drawn for at most {MAX_MATRIX_CLASSES})" in said
    pairs = confused_pairs_figure(targets, predictions, names, 3)
    assert [label.get_text() for label in pairs.axes[0].get_yticklabels()][0] == "class 0 taken for class 7"


def test_predicted_class_names_that_would_be_formulas_are_written_as_text(tmp_path, capsys):
    """Class names reach hyperlab-predict's CSV from a (shared) checkpoint: a spreadsheet would run `=HYPERLINK(...)`.
    The run draws its figures with those names too (math markup in one failed the run)."""
    labels = ['=HYPERLINK("http://x","y")', "@SUM(A1)", "+1+1", "-1", "-x", "$x^$"]
    path = labelled(tmp_path / "t.csv", labels)
    result = train(compose_config(tmp_path / "run", "experiment=animals", f"data.path={path}", "data.target=label",
                                  "data.drop=[]", "trainer.max_epochs=1", "logger=none"))  # fmt: skip
    assert result["status"] == "completed" and "test/acc" in result["metrics"]
    assert (tmp_path / "run" / "figures" / "confused_pairs.png").is_file()
    options = {"ckpt_path": result["best_checkpoint"], "table": str(path), "images": None, "sep": None,
               "file_encoding": "utf-8", "na_values": [], "decimal": ".", "top_k": 1, "invert": None,
               "box_fraction": None}  # fmt: skip
    predict_command(OmegaConf.create(options))
    predicted = {row["predicted"] for row in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    safe = {"'" + label if label[0] in "=@+" or label == "-x" else label for label in labels}  # (-1: a number)
    assert predicted and predicted <= safe, predicted
    assert [spreadsheet_text(text) for text in ("\tcmd", "\r=1", "-1.5e3", "plain")] == ["'\tcmd", "'\r=1", "-1.5e3",
                                                                                      "plain"]  # fmt: skip


def test_the_command_line_refuses_a_junk_cell_in_one_short_line(tmp_path):
    """A 50 MB junk cell made a 100-million-character "one-line" refusal."""
    path = labelled(tmp_path / "t.csv", ["a", "b"], {5: HUGE})
    argv = [sys.executable, "-m", "hyperlab", "train", "data=csv", "data.target=label", f"data.path={path}",
            f"hydra.run.dir={tmp_path / 'run'}"]  # fmt: skip
    process = commands.run(argv, capture_output=True, text=True, timeout=300)
    assert process.returncode == 2, process.stderr[-2000:]
    assert process.stderr.startswith("error: ") and process.stderr.count("\n") == 1, process.stderr[:2000]
    assert len(process.stderr) < 500 and f"{path}: column 'x' holds numbers but 'jjj" in process.stderr
