"""The trials of hyperlab's Optuna sweeper (hyperlab.sweeps.optuna): the loop that asks the study for trials and
launches their runs (`Trials`), each run's overrides, and what the study is told of a trial from its runs' records
(`metrics.json`), at its end or when a stopped search is resumed."""

import json
import logging
import math
import threading
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from hydra.core.utils import JobStatus

from hyperlab.errors import first_line

log = logging.getLogger(__name__)

TRIAL_KEY = "callbacks.optuna_pruning.trial"  # the override that tells a run its trial's number
SWEEP_ATTRIBUTE = "hyperlab:sweep_dir"  # a trial's user attribute: the sweep folder that ran it (for resume=true)
TOLD = ("completed", "diverged", "pruned", "failed")  # a run's statuses the study is told (interrupted: not)


def job_overrides(trial: Any, fixed: list[str], replicate: list[str]) -> list[str]:
    """A trial's run (of one replicate): each replicate reports to the trial, which keeps the first report of each
    epoch, so a later replicate is pruned where the first one was."""
    params = (f"{key}={value}" for key, value in trial.params.items())
    return [*fixed, *params, f"{TRIAL_KEY}={trial.number}", *replicate]


class Trials:
    """The search's loop: up to `jobs` trials in flight, each launched on its own (its replicates: one launch) from a
    thread of this process that waits for it; as soon as one ends, the study is told and the next one asked for, so
    no worker waits for the slowest trial of a batch (`wait_for_batch`: it does, and so the same seed draws the same
    trials whichever trial ends first). Asking and telling hold a lock: one study, one sampler, several threads."""

    def __init__(self, launcher: Any, study: Any, sweep_dir: Path, fixed: list[str],
                 replicates: list[list[str]]) -> None:  # fmt: skip
        self.launcher, self.study, self.sweep_dir = launcher, study, sweep_dir  # (launcher: Hydra's, as configured)
        self.job_idx = 0  # the next run's number in the sweep folder
        self.fixed, self.replicates = fixed, replicates
        self.lock = threading.Lock()

    def run(self, space: dict[str, Any], count: int, jobs: int, wait_for_batch: bool) -> None:
        """Run `count` trials, `jobs` at a time."""
        if jobs == 1:  # in this thread (Hydra's basic launcher runs the job here: signals reach the main thread only)
            for _ in range(count):
                self.run_trial(self.ask(space))
            return
        when = FIRST_COMPLETED if not wait_for_batch else ALL_COMPLETED
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="trial") as pool:
            running: set[Future] = set()
            while count > 0 or running:
                while count > 0 and len(running) < jobs:
                    running.add(pool.submit(self.run_trial, self.ask(space)))
                    count -= 1
                ended, running = wait(running, return_when=when)
                for future in ended:
                    future.result()  # (a bug in this loop: raised here, not lost in its thread)

    def ask(self, space: dict[str, Any]) -> Any:
        with self.lock:
            trial = self.study.ask(space)
            trial.set_user_attr(SWEEP_ATTRIBUTE, str(self.sweep_dir.resolve()))
            return trial

    def run_trial(self, trial: Any) -> None:
        """Launch the trial's runs (one per replicate) and tell the study their outcome."""
        jobs = [job_overrides(trial, self.fixed, replicate) for replicate in self.replicates]
        with self.lock:
            first, self.job_idx = self.job_idx, self.job_idx + len(jobs)
        try:
            returns = [job.return_value if job.status == JobStatus.COMPLETED else None
                       for job in self.launcher.launch(jobs, initial_job_idx=first)]  # fmt: skip
        except Exception as error:  # e.g. a SLURM job killed (time, memory): the others' outcomes still count
            log.error(f"the launcher lost a job of trial {trial.number}: {first_line(error)}")
            returns = [None] * len(jobs)
        if not all(isinstance(result, dict) for result in returns):  # (a run's record: what it left on disk)
            returns = run_results(self.sweep_dir).get(trial.number, [])
        with self.lock:
            tell(self.study, trial.number, returns)


def tell(study: Any, number: int, results: list[dict[str, Any] | None]) -> None:
    """Trial `number`'s outcome, from its runs' records (one per replicate; None or none: no record), as the study
    keeps it: pruned if a run was pruned, else the mean of the runs' best monitored values, else failed."""
    from optuna.trial import TrialState

    finished = [result or {} for result in results]
    values = [r.get("best_score") for r in finished if r.get("status") in ("completed", "diverged")]
    values = [value for value in values if isinstance(value, (int, float)) and math.isfinite(value)]
    if any(result.get("status") == "pruned" for result in finished):
        study.tell(number, state=TrialState.PRUNED)
    elif values:
        study.tell(number, sum(values) / len(values))
    else:
        study.tell(number, state=TrialState.FAIL)


def run_results(sweep_dir: Path) -> dict[int, list[dict[str, Any]]]:
    """The sweep folder's runs' metrics.json, by the number of the trial each ran (a trial's replicates: several)."""
    results: dict[int, list[dict[str, Any]]] = {}
    for path in sorted(sweep_dir.glob("*/metrics.json")):
        result = json.loads(path.read_text())
        number = result.get("hparams", {}).get(TRIAL_KEY)
        if isinstance(number, int):
            results.setdefault(number, []).append(result)
    return results
