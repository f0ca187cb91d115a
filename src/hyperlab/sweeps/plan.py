"""A sweep's plan: the runs it is meant to make, written to `<sweep>/plan.json` before the first one starts, so that
its table accounts for every one of them (hyperlab.sweeps.table), however the sweep ends.

- A grid (Hydra's basic sweeper): every job, with its overrides and its run folder's name, expanded the way the
  sweeper expands them (`a,b`, `range(...)`, `glob(...)` over a group's options). Two jobs that would share a
  folder are refused before any run.
- An Optuna search: `n_trials` runs, named by their trial numbers as they are drawn.
- Any other sweeper: no plan (the table counts the runs it finds).

A run the sweep refused (its folder in use by another process) is noted in `<sweep>/not_run.jsonl`, with the reason.
"""

import itertools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from hyperlab.errors import ConfigError
from hyperlab.replicates import REPLICATE_KEYS
from hyperlab.run_folder import name_of, parse_overrides

PLAN_FILE = "plan.json"
NOT_RUN_FILE = "not_run.jsonl"


@dataclass
class Plan:
    """`runs`: each planned job's run folder name and overrides (a grid); `trials`: the number of runs (a search)."""

    sweeper: str
    runs: dict[str, list[str]] = field(default_factory=dict)
    trials: int | None = None

    @property
    def size(self) -> int | None:
        return len(self.runs) if self.sweeper == "grid" else self.trials


def plan_sweep(config: DictConfig, config_loader: Any) -> Plan:
    """The plan of the sweep Hydra is about to launch (`config`: its config, as a Hydra callback gets it)."""
    sweeper = config.hydra.sweeper
    target = str(sweeper.get("_target_", ""))
    if "OptunaSweeper" in target:  # (each trial runs once per replicate: hyperlab.replicates)
        replicates = [o for o in parse_overrides({}, config.hydra.overrides.task) if o.is_sweep_override()
                      and o.get_key_element() in REPLICATE_KEYS]  # fmt: skip
        runs_per_trial = math.prod(len(list(o.sweep_string_iterator())) for o in replicates)
        return Plan("optuna", trials=int(sweeper.n_trials) * runs_per_trial)
    if "BasicSweeper" not in target:
        return Plan(target.rsplit(".", 1)[-1] or "unknown")
    params = OmegaConf.to_container(sweeper.params, resolve=False) if sweeper.get("params") else {}
    overrides = parse_overrides(params, config.hydra.overrides.task, config_loader)
    swept = {override.key_or_group for override in overrides if override.is_sweep_override()}
    typed = {override.key_or_group for override in overrides}
    excluded = set(config.hydra.job.config.override_dirname.exclude_keys)
    choices: dict[str, list[str]] = {}  # as Hydra's BasicSweeper.split_arguments: a later key replaces an earlier
    for override in overrides:
        key = override.get_key_element()
        if override.is_sweep_override():
            choices[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            choices[key] = [f"{key}={override.get_value_element_as_str()}"]
    plan = Plan("grid")
    for job in itertools.product(*choices.values()):
        name = name_of(list(job), swept, typed, excluded)
        if name in plan.runs:
            raise ConfigError(
                f"the sweep would run {' '.join(plan.runs[name])} twice (both in the folder {name}): give each run "
                "values of its own"
            )
        plan.runs[name] = list(job)
    return plan


def write_plan(folder: Path, plan: Plan) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    record = {"sweeper": plan.sweeper, "size": plan.size, "runs": plan.runs}
    (folder / PLAN_FILE).write_text(json.dumps(record, indent=1) + "\n")


def read_plan(folder: Path) -> Plan | None:
    path = folder / PLAN_FILE
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    runs = {str(name): [str(item) for item in job] for name, job in (record.get("runs") or {}).items()}
    return Plan(str(record.get("sweeper")), runs, record.get("size") if record.get("sweeper") == "optuna" else None)


def note_not_run(folder: Path, run_folder: str, reason: str) -> None:
    """A planned run the sweep refused to start, and why (one line each; appended by whichever process refused)."""
    line = json.dumps({"folder": run_folder, "reason": reason}) + "\n"
    handle = os.open(folder / NOT_RUN_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(handle, line.encode())  # (one write with O_APPEND: lines of several processes don't mix)
    finally:
        os.close(handle)


def not_run_reasons(folder: Path) -> dict[str, str]:
    """The reasons noted for runs that were refused, by run folder name (the latest for each)."""
    path = folder / NOT_RUN_FILE
    if not path.is_file():
        return {}
    reasons = {}
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
            reasons[str(entry["folder"])] = str(entry["reason"])
        except (ValueError, KeyError, TypeError):
            continue
    return reasons
