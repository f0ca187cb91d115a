"""Every planned run of a sweep is accounted for, whatever the sweeper (grid, Optuna), the launcher (basic, joblib,
submitit) and the training loop: each has its own folder (named by every key and group choice the runs differ in)
and a record, summary.md's first line counts them against the plan, and the exit status is 0 only when every
planned run completed, diverged or was pruned."""

import csv
import fcntl
import json
import shlex
import subprocess
import sys
from pathlib import Path

import commands
import pytest

from hyperlab.sweeps.runs import FINISHED, INDEX_FILE

STATUSES = {*FINISHED, "failed", "interrupted", "not run"}
FAST = ("trainer.max_epochs=1", "threads=1", "trainer.enable_progress_bar=false")


def sweep(log_dir: Path, *overrides: str, sweep_dir: Path | None = None) -> subprocess.CompletedProcess:
    sweep_dir = sweep_dir or log_dir / "sweep"
    command = [sys.executable, "-m", "hyperlab", "train", "-m", f"hydra.sweep.dir={sweep_dir}",
               f"paths.log_dir={log_dir}"]
    return commands.run([*command, *overrides], capture_output=True, text=True, timeout=900)


def summary_rows(sweep_dir: Path) -> list[dict[str, str]]:
    with (sweep_dir / "summary.csv").open() as handle:
        return list(csv.DictReader(handle))


def assert_accounted(sweep_dir: Path, process: subprocess.CompletedProcess, planned: int) -> list[dict[str, str]]:
    """The invariant: the plan has `planned` runs; summary.csv has a row for each, with a known status; every run
    folder is a row; summary.md's first line counts the plan; the exit status is 0 iff every run finished."""
    output = process.stdout + process.stderr
    plan = json.loads((sweep_dir / "plan.json").read_text())
    assert plan["size"] == planned, output[-3000:]
    rows = summary_rows(sweep_dir)
    assert len(rows) == planned, output[-3000:]
    assert {row["status"] for row in rows} <= STATUSES
    folders = {str(path.parent) for path in sweep_dir.glob("*/.hydra")}
    assert folders <= {row["folder"] for row in rows}
    assert len(folders) == len({row["folder"] for row in rows if row["folder"]})  # one folder per run
    first = (sweep_dir / "summary.md").read_text().splitlines()[2]
    assert first.startswith(f"{planned} planned runs: "), first
    finished = all(row["status"] in FINISHED for row in rows)
    assert (process.returncode == 0) == finished, output[-3000:]
    if not finished:
        assert "did not complete" in process.stderr or "no trial" in process.stderr
    return rows


@pytest.mark.parametrize(
    "loop", [(), ("trainer.gradient_clip_val=0.5",)], ids=["fast loop", "Lightning's loop"]
)  # fmt: skip
def test_a_grid_with_a_diverging_and_a_failing_run_accounts_for_every_run(tmp_path, loop):
    process = sweep(
        tmp_path, "experiment=digits", "model=cnn", "optimizer=sgd", *FAST, *loop,
        "model.channels=[8],[8,16,32,64]",  # four poolings shrink an 8x8 digit to nothing: fails
        "optimizer.lr=0.05,1e9",  # the loss overflows: diverges
    )  # fmt: skip
    rows = assert_accounted(tmp_path / "sweep", process, planned=4)
    assert sorted(row["status"] for row in rows) == ["completed", "diverged", "failed", "failed"]
    assert process.returncode == 1


def test_a_sweep_over_experiments_names_each_run_by_its_experiment(tmp_path):
    process = sweep(tmp_path, "experiment=glob([blobs,line,iris])", "trainer.fast_dev_run=true", "threads=1")
    rows = assert_accounted(tmp_path / "sweep", process, planned=3)
    assert sorted(Path(row["folder"]).name for row in rows) == [
        "experiment=blobs",
        "experiment=iris",
        "experiment=line",
    ]
    assert {row["status"] for row in rows} == {"completed"} and process.returncode == 0
    assert sorted(row["experiment"] for row in rows) == ["blobs", "iris", "line"]
    for row in rows:  # fast_dev_run keeps no checkpoint: the best is the best validation the run logged
        assert row["best monitored metric"].endswith(("(val/acc)", "(val/loss)"))  # (each run says which)


def test_a_run_whose_folder_another_process_holds_is_not_run_and_says_why(tmp_path):
    held = tmp_path / "sweep" / "seed=1"
    held.mkdir(parents=True)
    with (held / ".hyperlab.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        process = sweep(tmp_path, "experiment=digits", *FAST, "seed=0,1")
    rows = assert_accounted(tmp_path / "sweep", process, planned=2)
    by_folder = {Path(row["folder"]).name: row for row in rows}
    assert by_folder["seed=0"]["status"] == "completed"
    assert by_folder["seed=1"]["status"] == "not run" and "in use by another run" in by_folder["seed=1"]["note"]
    assert process.returncode == 1


def test_a_sweep_that_would_run_one_run_twice_is_refused_before_any_run(tmp_path):
    process = sweep(tmp_path, "experiment=digits", *FAST, "seed=1,1")
    assert process.returncode == 2 and "Traceback" not in process.stderr
    assert process.stderr.strip().splitlines()[-1].startswith("error: the sweep would run ")
    assert not list((tmp_path / "sweep").glob("*/metrics.json"))


def test_an_optuna_search_without_checkpoints_gets_a_value_from_every_trial_and_one_column_per_key(tmp_path):
    process = sweep(tmp_path, "hparams_search=optuna", "hydra.sweeper.n_trials=3", "trainer.fast_dev_run=true",
                    "threads=1")  # fmt: skip
    rows = assert_accounted(tmp_path / "sweep", process, planned=3)
    assert process.returncode == 0 and {row["status"] for row in rows} == {"completed"}
    header = next(csv.reader((tmp_path / "sweep" / "summary.csv").open()))
    assert len(header) == len(set(header)), header  # each searched key once
    assert {"lr", "hidden", "depth", "dropout", "trial"} <= set(header)
    import optuna

    study = optuna.load_study(study_name="digits", storage=f"sqlite:///{tmp_path / 'sweep' / 'optuna.db'}")
    assert [trial.state.name for trial in study.trials] == ["COMPLETE"] * 3
    assert "best_trial" in (tmp_path / "sweep" / "optimization_results.yaml").read_text()


def test_an_optuna_search_whose_trials_get_no_value_is_an_error(tmp_path):
    process = sweep(
        tmp_path, "hparams_search=optuna", "hydra.sweeper.n_trials=2", *FAST, "trainer.limit_val_batches=0"
    )  # no validation: nothing to judge a trial by
    assert process.returncode == 1, process.stderr[-3000:]
    assert "error: no trial of the study digits finished with a value (2 fail)" in process.stderr
    assert (tmp_path / "sweep" / "summary.md").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_other_launchers_account_for_every_run(tmp_path, launcher):
    extra = ["hydra.launcher.n_jobs=2"] if launcher == "joblib" else []
    process = sweep(tmp_path, "experiment=digits", *FAST, f"hydra/launcher={launcher}", *extra,
                    "model=cnn", "model.channels=[8],[8,16,32,64]", "seed=0,1")  # fmt: skip
    rows = assert_accounted(tmp_path / "sweep", process, planned=4)
    assert sorted(row["status"] for row in rows) == ["completed", "completed", "failed", "failed"]


def test_minus_m_with_cfg_is_one_line(tmp_path):
    process = commands.run([sys.executable, "-m", "hyperlab", "train", "-m", "optimizer.lr=0.1,0.01", "--cfg", "hydra"],
                             capture_output=True, text=True)  # fmt: skip
    assert process.returncode == 2 and "Traceback" not in process.stderr
    assert process.stderr.strip().splitlines() == [process.stderr.strip()]
    assert process.stderr.startswith("error: --cfg shows one config")


def test_a_run_adds_itself_to_its_experiment_folders_record_without_reading_the_others(tmp_path):
    def run(*overrides: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "hyperlab", "train", f"paths.log_dir={tmp_path}", *FAST, *overrides]
        return commands.run(command, capture_output=True, text=True, timeout=600)

    assert run("optimizer.lr=0.01").returncode == 0
    folder = tmp_path / "digits"
    index = json.loads((folder / INDEX_FILE).read_text())
    assert index["runs"] == 1 and index["typed"]["optimizer.lr"] == ["0.01"]
    sibling = folder / "a-broken-run"  # a run the next one must not read: its files are not even valid
    (sibling / ".hydra").mkdir(parents=True)
    (sibling / ".hydra" / "overrides.yaml").write_text("[unclosed")
    (sibling / "metrics.json").write_text("{not json")
    process = run("optimizer.lr=0.001")
    assert process.returncode == 0, process.stderr[-3000:]
    index = json.loads((folder / INDEX_FILE).read_text())
    assert index["runs"] == 2 and index["typed"]["optimizer.lr"] == ["0.01", "0.001"]
    assert index["values"]["optimizer.lr"] == [0.01, 0.001] and index["values"]["status"] == ["completed"]


def test_each_run_of_a_sweep_says_where_the_sweep_stands_and_the_chatter_is_gone(tmp_path):
    process = sweep(tmp_path, "experiment=digits", *FAST, "seed=0,1")
    output = process.stdout + process.stderr
    assert process.returncode == 0, output[-3000:]
    assert "[1/2] seed=0: completed, best val/acc " in output and "[2/2] seed=1: completed" in output
    assert "| best so far " in output and "so far, about " in output  # (the time left, after the first run)
    assert output.count("GPU available:") == 1 and "Restoring states" not in output
    assert "best run: seed=" in output and "fine-tune it:    hyperlab-finetune ckpt_path=" in output


def test_the_same_sweep_command_after_a_stop_says_how_to_finish_it_instead_of_starting_again(tmp_path):
    command = [sys.executable, "-m", "hyperlab", "train", "-m", "experiment=digits", *FAST, "seed=0,1",
               f"paths.log_dir={tmp_path}"]  # fmt: skip
    first = commands.run(command, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    (earlier,) = (tmp_path / "digits" / "multirun").iterdir()
    (earlier / "seed=1" / "metrics.json").unlink()  # as if killed in its last run
    again = commands.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert f"the same sweep stopped in {earlier} with 1 of its 2 runs unfinished" in again.stderr
    finish = again.stderr.split("finish it with `", 1)[1].split("`", 1)[0]
    assert finish.endswith(f"hydra.sweep.dir={earlier} resume=true")
    words = shlex.split(finish)
    finished = commands.run([sys.executable, "-m", "hyperlab", "train", *words[1:]], capture_output=True, text=True,
                              timeout=600)  # fmt: skip
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert json.loads((earlier / "seed=1" / "metrics.json").read_text())["status"] == "completed"
    assert len(list((tmp_path / "digits" / "multirun").iterdir())) == 1  # no new sweep was started
