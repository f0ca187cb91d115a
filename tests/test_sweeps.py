"""Sweeps: a real small sweep with a run forced to diverge and runs forced to crash, the homework table and
heatmap, TensorBoard HParams sessions, resume, the launchers, and runs stopped by a signal (Optuna: test_optuna.py)."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import commands
import pytest
import torch
import yaml
from helpers import tensorboard_server

from hyperlab.run_folder import run_name

SWEEP = (
    "experiment=digits", "model=cnn", "optimizer=sgd", "optimizer.momentum=0.9", "trainer.max_epochs=3",
    "model.channels=[8],[8,16,32,64]",  # four poolings shrink an 8x8 digit to nothing: refused, failed
    "optimizer.lr=0.05,1e9",            # lr=1e9 makes the loss overflow: those runs diverge
    "model.dropout=0.0,0.2",
)  # fmt: skip


def hyperlab_train(log_dir: Path, *overrides: str, sweep_dir: Path | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "hyperlab", "train", *overrides, f"paths.log_dir={log_dir}"]
    if sweep_dir is not None:
        command[4:4] = ["-m", f"hydra.sweep.dir={sweep_dir}"]
    return commands.run(command, capture_output=True, text=True, timeout=900)


def results(sweep_dir: Path) -> dict[str, dict]:
    return {path.parent.name: json.loads(path.read_text()) for path in sweep_dir.glob("*/metrics.json")}


def overrides(run_dir: Path) -> list[str]:
    """The overrides of a run, as typed on the command line."""
    return yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """The sweep above, run once for the tests of this module (8 runs)."""
    log_dir = tmp_path_factory.mktemp("logs")
    sweep_dir = log_dir / "sweep"
    process = hyperlab_train(log_dir, *SWEEP, sweep_dir=sweep_dir)
    return sweep_dir, process


def test_the_sweep_goes_on_past_failures_and_exits_non_zero(sweep):
    sweep_dir, process = sweep
    assert process.returncode != 0, process.stdout + process.stderr
    assert "error: 4 planned run(s) did not complete" in process.stderr
    statuses = {name: result["status"] for name, result in results(sweep_dir).items()}
    assert len(statuses) == 8
    assert sorted(statuses.values()) == ["completed"] * 2 + ["diverged"] * 2 + ["failed"] * 4
    for name, status in statuses.items():
        typed = dict(item.split("=", 1) for item in overrides(sweep_dir / name))
        if typed["model.channels"] == "[8,16,32,64]":
            assert status == "failed", name
        else:
            assert status == ("diverged" if float(typed["optimizer.lr"]) > 1 else "completed"), name


def test_run_folders_are_named_by_the_values_the_sweep_varies(sweep):
    sweep_dir, _ = sweep
    names = {frozenset(path.parent.name.split(",")) for path in sweep_dir.glob("*/metrics.json")}
    assert len(names) == 8
    assert {"channels=[8]", "dropout=0.2", "lr=0.05"} in names  # model=cnn, max_epochs=3, ...: typed for every run
    summary = (sweep_dir / "summary.md").read_text()
    assert "Same in every run: " in summary and "`trainer.max_epochs=3`" in summary and "`model=cnn`" in summary


def test_failures_and_divergence_are_recorded_with_their_reason(sweep):
    sweep_dir, _ = sweep
    for name, result in results(sweep_dir).items():
        if result["status"] == "failed":  # (4 blocks halve 8x8 digits to nothing: refused once the data says so)
            assert result["error"].startswith("model.channels=[8, 16, 32, 64] is not allowed: expected at most 3 ")
        elif result["status"] == "diverged":
            assert result["error"].startswith("the training loss became")
            assert int(result["error"].rsplit(" ", 1)[1]) <= 5  # lr=1e9 overflows within a few steps: stopped there
            assert result["best_checkpoint"] == ""  # it diverged before any epoch ended: nothing saved as best
            assert not list((sweep_dir / name).rglob("*.ckpt"))
        else:
            assert result["metrics"]["test/acc"] > 0.8
            checkpoint = torch.load(result["best_checkpoint"], weights_only=True)
            assert all(torch.isfinite(value).all() for value in checkpoint["state_dict"].values())


def test_the_summary_lists_every_run_best_first(sweep):
    sweep_dir, process = sweep
    assert str(sweep_dir / "summary.md") in process.stdout + process.stderr
    with (sweep_dir / "summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 8
    assert [row["status"] for row in rows[:2]] == ["completed", "completed"]
    best = [float(row["best val/acc"]) for row in rows[:2]]
    assert best == sorted(best, reverse=True)  # val/acc: higher is better
    assert {"channels", "lr", "dropout"} <= set(rows[0]) and "best epoch" in rows[0] and "wall time (s)" in rows[0]
    markdown = (sweep_dir / "summary.md").read_text()
    assert markdown.count("\n| ") == 9  # header + 8 runs
    assert "2 completed" in markdown and "4 failed" in markdown and "2 diverged" in markdown
    assert (sweep_dir / "heatmap.png").read_bytes()[:4] == b"\x89PNG"


def test_the_hparams_tab_opens_on_the_homework_table(sweep):
    sweep_dir, _ = sweep
    trained = {name: result for name, result in results(sweep_dir).items() if result["status"] != "failed"}
    with tensorboard_server(sweep_dir) as board:
        experiment = board.experiment()
        rows = board.sessions()
        images = board.get("/data/plugin/images/tags")["summary"]  # (the sweep's own run, not `.`)
        texts = board.get("/data/plugin/text/tags")["summary"]
        shared = board.get("/data/plugin/text/text?run=summary&tag=sweep/same%20in%20every%20run/text_summary")
        shared = shared[0]["text"]
    columns = {info["name"]: info for info in experiment["hparamInfos"]}
    assert list(columns) == ["model.channels", "model.dropout", "optimizer.lr", "status"]  # no constants
    assert columns["status"]["domainDiscrete"] == ["completed", "diverged"]
    assert columns["optimizer.lr"]["domainDiscrete"] == [0.05, 1e9]
    assert [info["displayName"] for info in experiment["metricInfos"]] == ["best val/acc", "test/acc", "test/loss"]
    assert set(rows) == set(trained)  # (the runs that failed before training have no session)
    # the table opens best first (TensorBoard orders the rows by their group name, which leads with the rank)
    with (sweep_dir / "summary.csv").open() as handle:
        ranked = [Path(row["folder"]).name for row in csv.DictReader(handle) if Path(row["folder"]).name in trained]
    assert [row["group"] for row in rows.values()] == [f"#{rank} {name}" for rank, name in enumerate(ranked, 1)]
    for name, result in trained.items():
        typed = dict(item.split("=", 1) for item in overrides(sweep_dir / name))
        row = rows[name]
        assert row["hparams"]["optimizer.lr"] == pytest.approx(float(typed["optimizer.lr"]))
        assert row["hparams"]["model.dropout"] == pytest.approx(float(typed["model.dropout"]))
        assert row["hparams"]["status"] == result["status"]
        if result["status"] == "completed":
            assert row["status"] == "STATUS_SUCCESS"
            assert row["metrics"]["best val/acc"] == pytest.approx(result["best_score"], abs=1e-5)
            assert row["metrics"]["test/acc"] == pytest.approx(result["metrics"]["test/acc"], abs=1e-5)
        else:
            assert row["status"] == "STATUS_FAILURE"
    assert {"sweep/curves", "sweep/heatmap"} <= set(images)
    assert set(texts) == {"sweep/summary/text_summary", "sweep/same in every run/text_summary"}  # summary.md too
    assert "<code>trainer.max_epochs=3</code>" in shared  # (as TensorBoard serves it: markdown made HTML)
    assert "<td>optimizer.momentum</td>" in shared and "<td>optimizer.lr</td>" not in shared


def test_curves_png_draws_every_validated_run(sweep):
    sweep_dir, _ = sweep
    assert (sweep_dir / "curves.png").read_bytes()[:4] == b"\x89PNG"
    for result in results(sweep_dir).values():
        if result["status"] == "completed":
            assert [row["epoch"] for row in result["history"]] == [1.0, 2.0, 3.0]


def test_a_new_sweep_never_writes_into_an_old_sweeps_folder(sweep, tmp_path):
    sweep_dir, _ = sweep
    before = {path: path.stat().st_mtime_ns for path in sweep_dir.glob("*/metrics.json")}
    process = hyperlab_train(sweep_dir.parent, *SWEEP, sweep_dir=sweep_dir)
    assert process.returncode != 0
    assert "already holds 8 finished runs" in process.stderr + process.stdout
    assert before == {path: path.stat().st_mtime_ns for path in sweep_dir.glob("*/metrics.json")}


def test_resume_skips_completed_runs_and_reruns_the_others(sweep, tmp_path):
    copy = tmp_path / "sweep"
    shutil.copytree(sweep[0], copy)
    earlier = results(copy)
    kept = {name for name, result in earlier.items() if result["status"] in ("completed", "failed")}
    before = {name: (copy / name / "metrics.json").stat().st_mtime_ns for name in kept}
    process = hyperlab_train(tmp_path, *SWEEP, "resume=true", sweep_dir=copy)
    assert process.returncode != 0  # the CNN runs fail again
    # completed: skipped; failed while being built (a CNN too deep for 8x8 images): refused again before its folder
    # is touched, the earlier record kept where it was
    assert before == {name: (copy / name / "metrics.json").stat().st_mtime_ns for name in kept}
    assert (process.stdout + process.stderr).count("already completed") == 2
    for name, result in earlier.items():
        if result["status"] == "diverged":  # re-run, the earlier attempt kept aside
            attempt = copy / name / "attempts" / "1"
            assert (attempt / "metrics.json").is_file()
            # its curves kept under a name TensorBoard does not list (no extra run per attempt in every tab)
            assert list(attempt.glob("events.out.set-aside-events.*")) and not list(attempt.rglob("*tfevents*"))
        if result["status"] == "failed":
            assert not (copy / name / "attempts").exists()


def test_the_table_is_rebuilt_for_a_sweep_killed_halfway(sweep, tmp_path, capsys):
    copy = tmp_path / "sweep"
    shutil.copytree(sweep[0], copy)
    for path in ("summary.md", "summary.csv", "heatmap.png"):
        (copy / path).unlink()
    unfinished = next(name for name, result in results(copy).items() if result["status"] == "completed")
    (copy / unfinished / "metrics.json").unlink()  # killed while training
    never_started = next(name for name, result in results(copy).items() if result["status"] == "failed")
    shutil.rmtree(copy / never_started)  # its job never began
    command = ["hyperlab-sweep-table", f"folder={copy}", "metric=test/acc", "pivot=[optimizer.lr,model.dropout]",
               "panels=model.channels"]  # fmt: skip
    executable = str(Path(sys.executable).parent / command[0])
    table = commands.run([executable, *command[1:]], capture_output=True, text=True)
    assert table.returncode == 0 and "summary:" in table.stdout, table.stderr
    with (copy / "summary.csv").open() as handle:
        statuses = [row["status"] for row in csv.DictReader(handle)]
    assert len(statuses) == 8
    assert statuses.count("interrupted") == 1 and statuses.count("not run") == 1
    assert (copy / "heatmap.png").is_file()


def test_run_names_shorten_keys_unless_they_clash():
    assert run_name(["optimizer.lr=0.01", "model.depth=2", "model.hidden=128"]) == "depth=2,hidden=128,lr=0.01"
    assert run_name(["data.seed=1", "seed=2"]) == "data.seed=1,seed=2"
    assert run_name(["model.channels=[16,32]", "optimizer=adam"]) == "channels=[16,32],optimizer=adam"
    assert run_name(["data.root=/some/path"]) == "root=_some_path"


@pytest.mark.slow
def test_joblib_runs_jobs_in_parallel_with_threads_split_between_them(tmp_path):
    process = hyperlab_train(
        tmp_path, "experiment=digits", "trainer.max_epochs=1", "threads=null", "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2", "seed=0,1", sweep_dir=tmp_path / "sweep",
    )  # fmt: skip
    assert process.returncode == 0, process.stderr[-3000:]
    runs = results(tmp_path / "sweep")
    assert [result["status"] for result in runs.values()] == ["completed", "completed"]
    assert {result["threads"] for result in runs.values()} == {max(1, (os.cpu_count() or 1) // 2)}


@pytest.mark.slow
def test_the_submitit_local_launcher_runs_the_jobs(tmp_path):
    process = hyperlab_train(
        tmp_path, "experiment=digits", "trainer.max_epochs=1", "hydra/launcher=submitit_local", "seed=0,1",
        sweep_dir=tmp_path / "sweep",
    )  # fmt: skip
    assert process.returncode == 0, process.stderr[-3000:]
    runs = results(tmp_path / "sweep")
    assert sorted(runs) == ["seed=0", "seed=1"]  # (max_epochs=1 is every run's)
    assert all(result["status"] == "completed" for result in runs.values())
    assert list((tmp_path / "sweep" / ".submitit").rglob("*_result.pkl"))  # submitit really ran them
