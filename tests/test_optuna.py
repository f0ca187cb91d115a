"""hyperlab's Optuna sweeper (hparams_search=optuna) on a current Optuna: the search space in Hydra's syntax, a study
kept in a storage (SQLite here) and shared by two processes, a search resumed after kill -9, and pruning."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import commands
import optuna
import pytest
import yaml
from helpers import tensorboard_server
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from hyperlab.classes import CONF_DIR
from hyperlab.command_line import check_command_line
from hyperlab.errors import ConfigError
from hyperlab.schemas import register_schemas
from hyperlab.sweeps.search_space import search_space

SEARCH = ("experiment=blobs", "hparams_search=optuna", "trainer.max_epochs=2", "threads=1")
# learning rates no run diverges at (a shared or resumed study draws afresh: a run of 0.05 at depth 3 may diverge
# before its first checkpoint, which the study records as failed)
SAFE = ("optimizer.lr=tag(log, interval(0.0003, 0.01))",)


def search(log_dir: Path, sweep_dir: Path, *overrides: str, wait: bool = True) -> commands.Command:
    command = [sys.executable, "-m", "hyperlab", "train", "-m", f"hydra.sweep.dir={sweep_dir}", *SEARCH, *overrides,
               f"paths.log_dir={log_dir}"]  # fmt: skip
    process = commands.start(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if wait:
        out, err = process.communicate(timeout=900)
        assert process.returncode == 0, (out + err)[-3000:]
    return process


def results(sweep_dir: Path) -> dict[str, dict]:
    return {path.parent.name: json.loads(path.read_text()) for path in sweep_dir.glob("*/metrics.json")}


def study(url: str, name: str = "blobs") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=url)


def test_hydras_sweep_syntax_is_optunas_search_space():
    space, fixed = search_space(
        {"optimizer.lr": "tag(log, interval(0.0001, 0.1))", "model.depth": "range(1, 4)", "model.hidden": "64,128"},
        [
            "model.depth=tag(int, interval(1, 5))",
            "model.hidden=choice(8, 16)",
            "trainer.max_epochs=2",
            "+x=range(0,1,0.25)",
        ],
    )
    assert space == {
        "optimizer.lr": FloatDistribution(0.0001, 0.1, log=True),
        "model.depth": IntDistribution(1, 5),  # tag(int, ...): integers
        "model.hidden": CategoricalDistribution([8, 16]),  # the command line's replaces the config's
        "+x": FloatDistribution(0.0, 0.75, step=0.25),  # (the run's override: +x=0.25)
    }
    config_only, _ = search_space({"model.depth": "range(1, 4)"}, [])
    assert config_only == {"model.depth": IntDistribution(1, 3)}  # range's stop is left out, as in Python
    assert fixed == ["trainer.max_epochs=2"]
    assert not OverridesParser.create().parse_overrides(["+x=1"])[0].is_sweep_override()


@pytest.mark.parametrize(
    "overrides, direction",
    [([], "minimize"), (["monitor.metric=val/acc"], "maximize"), (["monitor.metric=val/acc", "monitor.mode=min"],
     "minimize"), (["experiment=salary", "monitor.metric=val/r2"], "maximize")],
)  # fmt: skip
def test_optuna_optimises_the_monitored_metric_the_right_way(overrides, direction):
    register_schemas()  # (importing hyperlab.schemas did: said here, as this test needs it)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", ["experiment=mnist_mlp", "hparams_search=optuna", *overrides], return_hydra_config=True)
    assert cfg.hydra.sweeper.direction == direction
    assert cfg.hydra.sweeper._target_ == "hydra_plugins.hyperlab_optuna.OptunaSweeper"


def test_a_search_on_current_optuna_keeps_its_study_and_reports_the_best(tmp_path):
    sweep_dir = tmp_path / "sweep"
    search(tmp_path, sweep_dir, "hydra.sweeper.n_trials=3")
    runs = results(sweep_dir)
    assert len(runs) == 3 and all(result["status"] == "completed" for result in runs.values())
    assert all(name.startswith("trial=") and "lr=" in name for name in runs)  # its number and the values it drew
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert int(best["optuna"].split(".")[0]) >= 4
    assert best["best_value"] == pytest.approx(min(result["best_score"] for result in runs.values()), abs=1e-5)
    kept = study(f"sqlite:///{sweep_dir / 'optuna.db'}")  # the study outlives the search
    assert [trial.state for trial in kept.trials] == [TrialState.COMPLETE] * 3
    assert kept.best_value == pytest.approx(best["best_value"])
    lines = (sweep_dir / "summary.md").read_text().splitlines()
    header = [cell.strip() for cell in lines[lines.index("## Runs") + 2].strip("|").split("|")]
    assert {"lr", "hidden", "depth", "dropout", "trial"} <= set(header) and len(header) == len(set(header))


def test_two_processes_share_one_study_and_never_run_a_trial_twice(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    shared = (*SAFE, f"hydra.sweeper.storage={url}", "hydra.sweeper.n_trials=4", "trainer.max_epochs=1")
    processes = [search(tmp_path, tmp_path / f"sweep{i}", *shared, wait=False) for i in (1, 2)]
    for process in processes:
        out, err = process.communicate(timeout=900)
        assert process.returncode == 0, (out + err)[-3000:]
    trials = study(url).trials
    statuses = {name: result["status"] for i in (1, 2) for name, result in results(tmp_path / f"sweep{i}").items()}
    assert [trial.state for trial in trials] == [TrialState.COMPLETE] * 8, statuses
    numbers = [result["hparams"]["callbacks.optuna_pruning.trial"] for i in (1, 2)
               for result in results(tmp_path / f"sweep{i}").values()]  # fmt: skip
    assert sorted(numbers) == list(range(8))  # each trial ran once, in one of the two processes
    for record in (path for i in (1, 2) for path in (tmp_path / f"sweep{i}").glob("*/metrics.json")):
        # (a storage URL may hold a password: no file of a run keeps it)
        files = [record.parent / "config.yaml", *record.parent.glob("checkpoints/*.ckpt")]
        assert files[1:] and not any(str(tmp_path / "study.db").encode() in path.read_bytes() for path in files)
    assert len({json.dumps(trial.params, sort_keys=True) for trial in trials}) == 8  # each drew values of its own


def test_a_search_killed_halfway_resumes_without_losing_finished_trials(tmp_path):
    sweep_dir = tmp_path / "sweep"
    process = search(tmp_path, sweep_dir, *SAFE, "hydra.sweeper.n_trials=4", "trainer.max_epochs=4", wait=False)
    url = f"sqlite:///{sweep_dir / 'optuna.db'}"
    deadline = time.monotonic() + 600
    while len(results(sweep_dir)) < 2:  # two trials recorded, the next one asked for and training
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    recorded = {result["hparams"]["callbacks.optuna_pruning.trial"]: result["best_score"]
                for result in results(sweep_dir).values()}  # fmt: skip
    unrecorded = [t.number for t in study(url).trials if t.state == TrialState.RUNNING and t.number not in recorded]
    search(tmp_path, sweep_dir, *SAFE, "hydra.sweeper.n_trials=4", "trainer.max_epochs=4", "resume=true")
    trials = study(url).trials
    # a run recorded before the kill keeps its value (also one the study had not been told yet)
    assert {number: trials[number].value for number in recorded} == pytest.approx(recorded)
    assert [trial.state for trial in trials].count(TrialState.COMPLETE) == 4  # 4 trials run to their end
    for number in unrecorded:  # killed while it trained: abandoned, and run again with the same values
        assert trials[number].state == TrialState.FAIL
        drawn = len(trials[number].params) == 4  # (killed before its values were all drawn: it never ran)
        assert not drawn or trials[number].params in [trial.params for trial in trials[number + 1 :]]
    assert len(results(sweep_dir)) == 4 and len(trials) == 4 + len(unrecorded)  # (the killed run: no record)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=cnn"], "model.depth is not an option of CNN"),  # the preset's (an MLP's): before Hydra starts
        (["model.dropout=interval(0.0, 1.5)"], "hydra.sweeper.params: model.dropout=1.5 is not allowed"),  # searched
        (["hydra.sweeper.n_jobs=0"], "hydra.sweeper.n_jobs=0: must be a whole number, 1 or more"),
        (["optimizer.lr=tag(log, interval(0, 0.1))"], "hydra.sweeper.params.optimizer.lr: .*low > 0"),
    ],
)
def test_a_search_that_cannot_run_is_refused_in_one_line_before_any_trial(tmp_path, overrides, message):
    process = search(tmp_path, tmp_path / "sweep", *overrides, wait=False)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 2 and re.match(f"error: {message}", err) and err.count("\n") == 1, err
    assert not list((tmp_path / "sweep").glob("*/metrics.json"))


def test_a_search_without_m_is_refused_in_one_line():
    with pytest.raises(ConfigError, match="^hparams_search=optuna: a search runs trials as a sweep: add -m$"):
        check_command_line("train", ["experiment=blobs", "hparams_search=optuna"])


def test_a_hopeless_trial_is_pruned_and_recorded_so(tmp_path):
    """ThresholdPruner stops a trial whose validation accuracy is under 0.9 after its first epoch: lr=1e-6 is."""
    sweep_dir = tmp_path / "sweep"
    pruner = "{_target_:optuna.pruners.ThresholdPruner,lower:0.9,n_warmup_steps:0}"
    search(tmp_path, sweep_dir, "hydra.sweeper.n_trials=2", "trainer.max_epochs=5", "monitor.metric=val/acc",
           "optimizer.lr=choice(0.000001)", "~hydra.sweeper.pruner", f"+hydra.sweeper.pruner={pruner}")  # fmt: skip
    runs = results(sweep_dir)
    assert [result["status"] for result in runs.values()] == ["pruned", "pruned"]
    assert all(result["epochs"] == 1 and "pruned at epoch 0" in result["error"] for result in runs.values())
    states = [trial.state for trial in study(f"sqlite:///{sweep_dir / 'optuna.db'}").trials]
    assert states == [TrialState.PRUNED] * 2
    assert "| pruned |" in (sweep_dir / "summary.md").read_text()
    with tensorboard_server(sweep_dir) as board:
        sessions = board.sessions()
    assert [row["hparams"]["status"] for row in sessions.values()] == ["pruned", "pruned"]


def test_a_storage_that_cannot_be_opened_is_refused_in_one_line_before_any_trial(tmp_path):
    bad = "hydra.sweeper.storage=postgresql://student:secret@127.0.0.1:1/optuna"  # (no driver, or no server)
    process = search(tmp_path, tmp_path / "sweep", bad, wait=False)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 2 and err.startswith("error: hydra.sweeper.storage: ") and err.count("\n") == 1, err
    assert "secret" not in err and "student:***@" in err  # (a password is never printed)
    assert not list((tmp_path / "sweep").glob("*/metrics.json"))


@pytest.mark.slow
def test_a_trial_trained_by_two_processes_is_pruned_too(tmp_path):
    """ddp_spawn: optuna-integration stops both processes and records the pruning in the trial, which the run reads."""
    sweep_dir = tmp_path / "sweep"
    pruner = "{_target_:optuna.pruners.ThresholdPruner,lower:0.9,n_warmup_steps:0}"
    search(tmp_path, sweep_dir, "hydra.sweeper.n_trials=1", "trainer.max_epochs=4", "monitor.metric=val/acc",
           "trainer=ddp", "trainer.strategy=ddp_spawn", "trainer.accelerator=cpu", "optimizer.lr=choice(0.000001)",
           "~hydra.sweeper.pruner", f"+hydra.sweeper.pruner={pruner}")  # fmt: skip
    (result,) = results(sweep_dir).values()
    assert (result["status"], result["epochs"], result["error"]) == ("pruned", 1, "Trial was pruned at epoch 0.")
    (trial,) = study(f"sqlite:///{sweep_dir / 'optuna.db'}").trials
    assert trial.state == TrialState.PRUNED and list(trial.intermediate_values) == [0]  # reported by rank 0


class SleepingLauncher:
    """A launcher whose jobs sleep for their trial's `seconds` (the Trials loop under test only launches and waits;
    Hydra's joblib and SLURM launchers are run for real by the benchmark and tests/test_cluster.py)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []  # ("start" | "end", trial), in the order they happened

    def launch(self, job_overrides, initial_job_idx):
        from hydra.core.utils import JobReturn, JobStatus

        values = dict(line.split("=", 1) for line in job_overrides[0])
        trial = int(values["callbacks.optuna_pruning.trial"])
        self.events.append(("start", trial))
        time.sleep(float(values["seconds"]))
        self.events.append(("end", trial))
        job = JobReturn(overrides=job_overrides[0], status=JobStatus.COMPLETED)
        job.return_value = {"status": "completed", "best_score": float(values["seconds"])}
        return [job]


@pytest.mark.parametrize("wait_for_batch", [False, True])
def test_a_search_starts_a_trial_as_soon_as_one_ends_unless_told_to_wait_for_the_batch(tmp_path, wait_for_batch):
    from hyperlab.sweeps.trials import Trials

    lengths = [1.5, 0.05, 0.05, 0.05, 0.05, 0.05]  # trial 0 is slow: 4 short ones fit beside it on a second worker
    launcher = SleepingLauncher()
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", study_name="s")
    for seconds in lengths:
        study.enqueue_trial({"seconds": seconds})
    space = {"seconds": FloatDistribution(0.0, 2.0)}
    Trials(launcher, study, tmp_path, [], [[]]).run(space, len(lengths), 2, wait_for_batch=wait_for_batch)
    assert [trial.state for trial in study.trials] == [TrialState.COMPLETE] * 6
    assert [trial.value for trial in study.trials] == lengths  # each told its own run's outcome
    while_the_slow_one_ran = launcher.events[: launcher.events.index(("end", 0))]
    if wait_for_batch:  # trials 0 and 1, then 2 and 3 only once both ended
        assert sorted(while_the_slow_one_ran) == [("end", 1), ("start", 0), ("start", 1)]
    else:  # trials 1-5 ran one after the other on the second worker while trial 0 ran on the first
        assert sorted(while_the_slow_one_ran) == sorted(
            [("start", 0)] + [(what, n) for n in range(1, 6) for what in ("start", "end")]
        )
