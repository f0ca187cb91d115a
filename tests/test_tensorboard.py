"""What TensorBoard shows of a run, read from a real TensorBoard server (its HTTP API, as the browser reads it):
the HParams tab's columns and rows, the Scalars tab's charts (Lightning's names, one TensorBoard run per run; no
`epoch`, no `hp/*`), train and val on one Custom Scalars chart, the figures' step. The sweep's TensorBoard record is
tested with the sweep of test_sweeps.py."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import commands
import pytest
from helpers import curve, read_events, tensorboard_server

from hyperlab.run_folder import run_name


@pytest.fixture(scope="module")
def single_run(tmp_path_factory) -> Path:
    """`hyperlab-train experiment=digits optimizer.lr=0.01 trainer.max_epochs=3`, a run on its own."""
    log_dir = tmp_path_factory.mktemp("logs")
    command = [sys.executable, "-m", "hyperlab", "train", "experiment=digits", "optimizer.lr=0.01",
               "trainer.max_epochs=3", f"paths.log_dir={log_dir}", "trainer.enable_progress_bar=false"]  # fmt: skip
    process = commands.run(command, capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stderr[-2000:]
    (run_dir,) = [path.parent for path in (log_dir / "digits").glob("*/metrics.json")]
    assert f"tensorboard --logdir {log_dir / 'digits'}" in process.stdout  # the folder that names the run
    return run_dir


def test_a_runs_hparams_tab_opens_on_its_typed_keys_its_status_and_its_headline_metrics(single_run):
    result = json.loads((single_run / "metrics.json").read_text())
    with tensorboard_server(single_run.parent) as board:
        experiment = board.experiment()
        rows = board.sessions()
    columns = [(info["name"], info["differs"]) for info in experiment["hparamInfos"]]
    # the experiment folder's record: what the run's command line set, and its status (TensorBoard ticks five)
    assert columns == [("optimizer.lr", True), ("status", True), ("trainer.max_epochs", True)]  # (by name)
    assert [info["displayName"] for info in experiment["metricInfos"]] == ["best val/acc", "test/acc", "test/loss"]
    row = rows[single_run.name]
    assert row["status"] == "STATUS_SUCCESS" and row["hparams"]["status"] == "completed"
    assert row["hparams"]["optimizer.lr"] == 0.01 and row["hparams"]["task.loss"] == "CrossEntropyLoss"
    assert row["hparams"]["model.hidden"].strip() == str(result["hparams"]["model.hidden"])  # every one, ints as text
    assert row["metrics"] == {
        "best val/acc": pytest.approx(result["best_score"], abs=1e-5),
        "test/acc": pytest.approx(result["metrics"]["test/acc"], abs=1e-5),
        "test/loss": pytest.approx(result["metrics"]["test/loss"], abs=1e-5),
    }


def test_an_experiments_runs_share_one_record_on_the_keys_they_set_differently(single_run, tmp_path):
    """A second run in the experiment's folder: the folder's one record (TensorBoard reads one) is rewritten to show
    what tells the runs apart: the keys their command lines set to different values (the group `optimizer` by its
    option's name)."""
    shutil.copytree(single_run.parent, tmp_path / "digits")
    command = [sys.executable, "-m", "hyperlab", "train", "experiment=digits", "optimizer=sgd", "optimizer.lr=0.01",
               "trainer.max_epochs=1", f"paths.log_dir={tmp_path}", "trainer.enable_progress_bar=false"]  # fmt: skip
    process = commands.run(command, capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stderr[-2000:]
    assert len(list((tmp_path / "digits" / "summary").glob("events.out.tfevents.*"))) == 1  # one record, rewritten
    with tensorboard_server(tmp_path / "digits") as board:
        experiment = board.experiment()
        rows = board.sessions()
    shown = {info["name"]: info["domainDiscrete"] for info in experiment["hparamInfos"]}
    epochs = [f"{n:>12}" for n in (1, 3)]  # whole numbers as right-aligned text (TensorBoard would print 1.0000)
    assert shown == {"optimizer": ["adam", "sgd"], "trainer.max_epochs": epochs, "status": ["completed"]}
    assert sorted(row["hparams"]["optimizer"] for row in rows.values()) == ["adam", "sgd"]


def test_a_run_is_one_tensorboard_run_with_lightnings_names_and_train_meets_val_on_one_chart(single_run):
    with tensorboard_server(single_run.parent) as board:
        tags = board.get("/data/plugin/scalars/tags")
        layout = board.get("/data/plugin/custom_scalars/layout")
    name = single_run.name
    assert set(tags) == {name}  # no sub-runs: a 64-run sweep is 64 TensorBoard runs (and its summary)
    assert {"train/loss", "val/loss", "val/acc", "val/acc_best", "test/acc", "test/loss"} <= set(tags[name])
    assert not [tag for tag in tags[name] if tag == "epoch" or tag.startswith("hp")]
    (category,) = layout["category"]
    charts = {chart["title"]: chart["multiline"]["tag"] for chart in category["chart"]}
    assert charts == {"loss: train vs val": [r"^(train|val)/loss$"], "acc: train vs val": [r"^(train|val)/acc$"]}


def test_figures_are_at_the_step_the_curves_end_at(single_run):
    events = read_events(single_run)
    last_step = events.Scalars("train/loss")[-1].step
    assert last_step == events.Scalars("val/acc")[-1].step
    assert {event.step for tag in events.Tags()["images"] for event in events.Images(tag)} == {last_step}
    best = curve(single_run, "val/acc_best")
    assert best == sorted(best) and best[-1] == pytest.approx(max(curve(single_run, "val/acc")))  # the best so far


def test_a_sweeps_runs_are_named_by_the_keys_it_varies(tmp_path):
    multirun = tmp_path / "multirun.yaml"
    multirun.write_text(
        "hydra:\n"
        "  sweeper: {params: {model.depth: '1,2'}}\n"
        "  overrides: {task: [experiment=digits, 'optimizer.lr=0.1,0.01', trainer.max_epochs=5, +model.x=3]}\n"
        "  job: {config: {override_dirname: {exclude_keys: [experiment]}}}\n"
    )
    typed = ["experiment=digits", "optimizer.lr=0.1", "trainer.max_epochs=5", "+model.x=3", "model.depth=2"]
    assert run_name(typed, str(tmp_path)) == "depth=2,lr=0.1"
    assert run_name(["trainer.max_epochs=5"], str(tmp_path)) == "max_epochs=5"  # nothing swept: all it sets
    no_multirun_yaml = str(tmp_path / "elsewhere")
    assert run_name(typed, no_multirun_yaml) == "experiment=digits,depth=2,x=3,lr=0.1,max_epochs=5"


def test_the_best_score_curve_skips_a_validation_that_scored_nan(tmp_path):
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.trainer.states import TrainerFn

    from hyperlab.callbacks.best_score import BestScore
    from hyperlab.loggers import TensorBoardLogger

    logger = TensorBoardLogger(str(tmp_path), name="", version="", default_hp_metric=False)
    trainer = L.Trainer(callbacks=[ModelCheckpoint(monitor="val/acc", mode="max")], logger=logger)
    trainer.state.fn = TrainerFn.FITTING
    for value in (0.5, float("nan")):
        trainer.callback_metrics["val/acc"] = torch.tensor(value)
        BestScore().on_validation_end(trainer, None)
    logger.finalize("success")
    assert [event.value for event in read_events(tmp_path).Scalars("val/acc_best")] == [0.5]


def test_past_40_runs_the_sweep_prints_addresses_that_open_the_filtered_tabs(tmp_path):
    from hyperlab.sweeps.callback import filtered_views
    from hyperlab.sweeps.table import Summary

    summary = Summary(tmp_path / "summary.md", tmp_path / "summary.csv", None, None, {"completed": 64})
    summary.leaders = ["depth=1,hidden=512,lr=0.001", "depth=2,hidden=128,lr=0.001"]
    summary.tensorboard_runs = 40  # (39 runs and the summary: TensorBoard ticks them all)
    assert filtered_views(summary) == []
    summary.tensorboard_runs = 41
    best, figures = filtered_views(summary)
    regex = r"^(depth%3D1,hidden%3D512,lr%3D0\.001|depth%3D2,hidden%3D128,lr%3D0\.001)$"  # (= as %3D)
    assert best.endswith(f"http://localhost:6006/#custom_scalars&regexInput={regex}")
    assert figures.endswith("http://localhost:6006/#images&regexInput=^summary$")
    summary.leaders = []  # (no run to rank: the figures still)
    assert filtered_views(summary) == [figures]


def test_hparams_values_whole_numbers_as_text_that_sorts_and_a_column_of_one_kind():
    from tensorboard.plugins.hparams.api_pb2 import DATA_TYPE_FLOAT64, DATA_TYPE_STRING

    from hyperlab.loggers.tensorboard import hparam_info, shown_value

    hidden = hparam_info("model.hidden", [64, 128], shown=True)
    padded = [value.string_value for value in hidden.domain_discrete.values]
    assert hidden.type == DATA_TYPE_STRING and padded == [f"{64:>12}", f"{128:>12}"] and padded == sorted(padded)
    dropout = hparam_info("model.dropout", [0, 0.2], shown=True)  # (Hydra reads `0` as an int)
    assert dropout.type == DATA_TYPE_FLOAT64
    assert [value.number_value for value in dropout.domain_discrete.values] == [0.0, 0.2]
    assert hparam_info("mixed", [True, "warn"], shown=True).type == DATA_TYPE_STRING  # (a bool beside text)
    assert shown_value(float("nan")) == "nan" and shown_value(-3) == -3


def test_the_screenshot_script_refuses_what_it_cannot_do_in_one_line(tmp_path):
    script = Path(__file__).resolve().parents[1] / "scripts" / "tensorboard_screenshots.py"
    for arguments, said in ((["nowhere"], "no folder nowhere"), ([str(tmp_path), "--tabs", "graphs"], "--tabs")):
        process = subprocess.run([sys.executable, str(script), *arguments], capture_output=True, text=True)
        assert process.returncode == 2 and process.stderr.startswith(f"error: {said}"), process.stderr
        assert process.stderr.count("\n") == 1


@pytest.mark.skipif(not shutil.which("chromium"), reason="no Chromium here (Debian: apt-get install chromium)")
def test_the_screenshot_script_takes_each_tab_as_a_browser_shows_it(single_run, tmp_path):
    script = Path(__file__).resolve().parents[1] / "scripts" / "tensorboard_screenshots.py"
    command = [sys.executable, str(script), str(single_run.parent), "--out", str(tmp_path), "--tabs", "hparams,text"]
    process = subprocess.run(command, capture_output=True, text=True, timeout=600)  # (a script: no hyperlab command)
    assert process.returncode == 0, process.stderr[-2000:]
    for tab in ("hparams", "text"):
        shot = tmp_path / f"{tab}.png"
        assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 20_000  # (a blank page: ~10 KB)
