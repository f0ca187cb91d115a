"""An honest sweep table: a run that ends at chance level says so, every metric column says when it was measured,
and no column is empty in every row or repeats another."""

import csv
import json
import math
from pathlib import Path

import torch
from helpers import compose_config

from hyperlab.sweeps.table import write_summary
from hyperlab.tasks.chance import chance_note
from hyperlab.train import train


def test_a_classifier_no_better_than_the_majority_class_or_guessing_is_at_chance_level():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    shares = torch.tensor([0.5, 0.3, 0.2])
    guessing = float(-(shares * shares.log()).sum())
    history = [{"val/acc": 0.45, "val/loss": 1.5}, {"val/acc": 0.5, "val/loss": 1.4}]
    note = chance_note("classification", labels, history)
    assert note.startswith("at chance level: val/acc 0.5000 (always answering the most common class: 0.5000)")
    assert f"(guessing: {guessing:.4f})" in note
    assert chance_note("classification", labels, [{"val/acc": 0.3, "val/loss": guessing}]) != ""  # the loss says so
    assert chance_note("classification", labels, [{"val/acc": 0.9, "val/loss": 0.3}]) == ""
    assert chance_note("regression", None, [{"val/r2": 0.01}]).startswith("at chance level: val/r2 0.0100")
    assert chance_note("regression", None, [{"val/r2": 0.01}, {"val/r2": 0.6}]) == ""  # its best validation counts
    assert chance_note("classification", None, [{"val/acc": 0.1}]) == ""  # (labels unknown: no judgement)


def test_a_run_that_learns_nothing_is_noted_at_chance_level(tmp_path):
    result = train(compose_config(tmp_path / "stuck", "optimizer.lr=1e-9", "trainer.max_epochs=1"))
    assert result["status"] == "completed" and result["note"].startswith("at chance level: ")
    learned = train(compose_config(tmp_path / "learned", "trainer.max_epochs=2"))
    assert learned["note"] == ""


def fake_run(folder: Path, name: str, typed: list[str], metrics: dict[str, float], note: str = "") -> None:
    run = folder / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {item}\n" for item in typed))
    record = {"status": "completed", "error": None, "note": note, "metrics": metrics, "best_score": metrics["val/loss"],
              "best_epoch": 3, "monitor": "val/loss", "monitor_mode": "min", "kind": "regression", "wall_time_s": 1.0}
    (run / "metrics.json").write_text(json.dumps(record))


def test_the_table_labels_each_metric_and_leaves_out_empty_and_twin_columns(tmp_path):
    metrics = {"train/loss": 0.5, "val/loss": 0.4, "val/mse": 0.4, "test/loss": 0.45, "test/mse": 0.45, "test/r2": 0.6}
    fake_run(tmp_path, "lr=0.1", ["optimizer.lr=0.1"], metrics)
    fake_run(tmp_path, "lr=0.01", ["optimizer.lr=0.01"], {**metrics, "val/loss": 0.9, "val/mse": 0.9},
             note="at chance level: val/r2 0.0100, no better than predicting the mean (0)")  # fmt: skip
    write_summary(tmp_path)
    with (tmp_path / "summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["lr", "status", "best val/loss", "best epoch", "train/loss (last epoch)",
                             "val/loss (last epoch)", "test/loss (best checkpoint)", "test/r2 (best checkpoint)",
                             "wall time (s)", "note", "folder"]  # fmt: skip  (val/mse and test/mse: twins of the loss)
    assert rows[1]["note"].startswith("at chance level") and rows[0]["note"] == ""
    assert math.isclose(float(rows[0]["best val/loss"]), 0.4)
