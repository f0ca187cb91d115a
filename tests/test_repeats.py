"""`repeats=N` (hyperlab.replicates): every configuration run N times with seeds of their own, on a grid, on a single
run's command line (a sweep without -m) and in an Optuna search (whose trial's value is the mean of its runs)."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import commands
import optuna
import pytest

from hyperlab.cli import check_command_line
from hyperlab.config import MAX_SEED
from hyperlab.errors import ConfigError
from hyperlab.replicates import run_seed, with_replicates, with_run_seed

FAST = ("trainer.max_epochs=2", "threads=1", "logger=csv")


def train(log_dir: Path, sweep_dir: Path, *overrides: str, experiment: str = "blobs") -> subprocess.CompletedProcess:
    flags = [argument for argument in overrides if argument.startswith("-")]  # (Hydra's: before the overrides)
    overrides = (f"experiment={experiment}", *FAST, *(o for o in overrides if o not in flags))
    command = [sys.executable, "-m", "hyperlab", "train", *flags, *overrides, f"paths.log_dir={log_dir}",
               f"hydra.sweep.dir={sweep_dir}"]  # fmt: skip
    finished = commands.run(command, capture_output=True, text=True, timeout=900)
    assert finished.returncode == 0, (finished.stdout + finished.stderr)[-3000:]
    return finished


def results(sweep_dir: Path) -> dict[str, dict]:
    return {path.parent.name: json.loads(path.read_text()) for path in sorted(sweep_dir.glob("*/metrics.json"))}


def test_repeat_zero_keeps_the_seed_and_the_others_get_seeds_of_their_own():
    assert run_seed(7, 0) == 7
    seeds = {run_seed(seed, repeat) for seed in range(20) for repeat in range(1, 20)}
    assert len(seeds) == 20 * 19  # (seed=1,repeat=0 and seed=0,repeat=1 differ: not seed + repeat)
    assert all(0 <= seed <= MAX_SEED for seed in seeds)
    assert run_seed(3, 2) == run_seed(3, 2)  # (a resumed repeat trains with the same seed)


def test_a_repeats_seed_is_settled_in_a_new_config_and_the_callers_stays_as_composed(make_config):
    cfg = make_config("repeat=2", "seed=7")
    settled = with_run_seed(cfg)
    assert settled.seed == run_seed(7, 2) != 7 and cfg.seed == 7
    assert with_run_seed(cfg).seed == settled.seed  # (settling again does not hash the seed twice)


def test_repeats_become_sweep_values_on_the_command_line():
    assert check_command_line("train", ["experiment=blobs", "repeats=3"]) == [
        "-m",
        "experiment=blobs",
        "repeats=3",
        "repeat=0,1,2",
    ]
    assert check_command_line("train", ["-m", "optimizer.lr=0.1,0.01", "repeats=2"])[-1] == "repeat=0,1"
    assert check_command_line("train", ["repeats=3", "repeat=2"]) == ["repeats=3", "repeat=2"]  # (one of them)
    assert check_command_line("train", ["experiment=iris"]) == ["experiment=iris"]
    assert with_replicates(["-m", "a=1"], set(), 1, 4) == ["-m", "a=1", "data.fold=0,1,2,3"]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["repeats=0"], "repeats=0 is not allowed: expected an integer from 1 to 1000"),
        (["repeats=3", "repeat=3"], "repeat=3 is not allowed: expected an integer from 0 to 2 (repeats=3)"),
        (["-m", "repeats=1,3"], "repeats takes one value, not a sweep"),
        (
            ["experiment=blobs", "data.folds=5"],
            "data.folds is not a key of the config: it is an option of data=csv, digits, image_folder, sklearn only",
        ),  # fmt: skip
    ],
)
def test_wrong_repeats_are_refused_in_one_line(arguments, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_command_line("train", arguments)


def test_a_grid_with_repeats_runs_every_configuration_with_seeds_of_its_own(tmp_path):
    sweep_dir = tmp_path / "sweep"
    train(tmp_path, sweep_dir, "-m", "optimizer.lr=0.1,0.01", "repeats=3", "seed=5")
    runs = results(sweep_dir)
    assert sorted(runs) == sorted(f"lr={lr},repeat={r}" for lr in ("0.1", "0.01") for r in range(3))
    assert all(result["status"] == "completed" for result in runs.values())
    for lr in ("0.1", "0.01"):
        seeds = [runs[f"lr={lr},repeat={r}"]["hparams"]["seed"] for r in range(3)]
        assert seeds == [run_seed(5, r) for r in range(3)]  # (the same seeds for every configuration)
    scores = {runs[f"lr=0.1,repeat={r}"]["best_score"] for r in range(3)}
    assert len(scores) > 1  # (other seeds: other weights, other batch order)
    with (sweep_dir / "configurations.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 2
    with (sweep_dir / "summary.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 6


def test_repeats_without_m_make_a_sweep_of_one_configuration(tmp_path):
    sweep_dir = tmp_path / "sweep"
    finished = train(tmp_path, sweep_dir, "repeats=2")
    assert sorted(results(sweep_dir)) == ["repeat=0", "repeat=1"]
    assert "2 planned runs: 2 completed" in finished.stdout + finished.stderr


def test_folds_run_each_fold_of_a_table_once(tmp_path):
    sweep_dir = tmp_path / "sweep"
    assert check_command_line("train", ["experiment=iris", "data.folds=3"])[-1] == "data.fold=0,1,2"
    finished = train(tmp_path, sweep_dir, "data.folds=3", experiment="iris")
    (finetune,) = [line for line in finished.stdout.splitlines() if line.startswith("  fine-tune it:")]
    assert "experiment=iris" in finetune and "data.fold" not in finetune  # (pasted: one fine-tune, not 3)
    runs = results(sweep_dir)
    assert sorted(runs) == ["fold=0", "fold=1", "fold=2"]
    assert len({result["metrics"]["val/loss"] for result in runs.values()}) == 3  # (each validates on its fold)
    with (sweep_dir / "configurations.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 1


def test_an_optuna_trial_with_repeats_is_the_mean_of_its_runs(tmp_path):
    sweep_dir = tmp_path / "search"
    train(tmp_path, sweep_dir, "-m", "hparams_search=optuna", "hydra.sweeper.n_trials=2", "repeats=2",
          "optimizer.lr=tag(log, interval(0.0003, 0.01))")  # fmt: skip
    runs = results(sweep_dir)
    assert len(runs) == 4
    by_trial: dict[int, list[float]] = {}
    for result in runs.values():
        by_trial.setdefault(result["hparams"]["callbacks.optuna_pruning.trial"], []).append(result["best_score"])
    study = optuna.load_study(study_name="blobs", storage=f"sqlite:///{sweep_dir / 'optuna.db'}")
    assert len(study.trials) == 2
    for trial in study.trials:
        assert trial.value == pytest.approx(sum(by_trial[trial.number]) / 2)
        assert len(by_trial[trial.number]) == 2
