"""A sweep's runs, read from its folder: every run folder's typed values and metrics.json, and every run its plan
(plan.json) names that has none (hyperlab.sweeps.plan); what the table, the figures and the TensorBoard record are
made from."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hyperlab.errors import DataError
from hyperlab.json_files import read_json
from hyperlab.replicates import REPLICATE_KEYS
from hyperlab.run_folder import excluded_keys, sweep_keys
from hyperlab.sweeps.plan import not_run_reasons, read_plan
from hyperlab.tasks import metric_mode

INDEX_FILE = ".hyperlab-runs.json"  # what an experiment folder's runs recorded (a FolderRecord)
BEST = "best"  # the metric name that means: the run's best value of its monitored validation metric
FINISHED = ("completed", "diverged", "pruned")  # statuses with metrics to rank (a pruned run: what it reached)
NOT_RUN = "not run"  # a planned run that never started
NO_RECORD = "it left no record: its process was killed (or is still running)"


@dataclass
class Run:
    """One job of the sweep: the values it set and what its metrics.json says (if it got that far); `reason`: why a
    run has no record."""

    folder: Path | None
    values: dict[str, str]
    result: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    refused: bool = False  # the sweep did not start it (its folder was another process's)

    @property
    def status(self) -> str:
        """metrics.json's status; `not run` for a planned run that never started, `interrupted` for one whose
        process ended before it wrote its record."""
        if self.result:
            return str(self.result.get("status", "failed"))
        return NOT_RUN if self.folder is None or self.refused else "interrupted"

    @property
    def note(self) -> str:
        return self.result.get("error") or self.result.get("incomplete") or self.result.get("note") or self.reason

    def metric(self, name: str) -> float:
        """A metric of metrics.json (`test/acc`), one of its top-level numbers (`wall_time_s`), or `best`."""
        value = self.result.get("best_score" if name == BEST else name, self.result.get("metrics", {}).get(name))
        return float(value) if isinstance(value, (int, float)) else float("nan")


@dataclass
class Sweep:
    folder: Path
    runs: list[Run]
    swept: list[str]  # keys whose value differs between runs, in the sweep's order
    fixed: dict[str, str]  # keys every run set to the same value
    monitor: str
    mode: str
    planned: int | None = None  # the runs the sweep was meant to make (plan.json; None: unknown)

    @property
    def compared(self) -> list[str]:
        """The swept keys that make a configuration: the swept keys but the replicate keys."""
        return [key for key in self.swept if key not in REPLICATE_KEYS]

    @property
    def replicated(self) -> list[str]:
        """The replicate keys the sweep varies (`repeat`, `data.fold`, `seed`), in its order."""
        return [key for key in self.swept if key in REPLICATE_KEYS]


def load_sweep(folder: Path) -> Sweep:
    """Read every run folder of `folder`, and every run its plan (plan.json) names that has none."""
    swept_by_sweep = sweep_keys(folder / "multirun.yaml")[0]
    reasons = not_run_reasons(folder)
    runs = []
    for overrides_file in sorted(folder.glob("*/.hydra/overrides.yaml")):
        run_folder = overrides_file.parent.parent
        ignored = set(excluded_keys(overrides_file.parent / "hydra.yaml")) - swept_by_sweep
        result, reason = read_record(run_folder / "metrics.json")
        reason = reason or ("" if result else reasons.get(run_folder.name, NO_RECORD))
        refused = not result and run_folder.name in reasons
        runs.append(Run(run_folder, typed_values(overrides_file, ignored), result, reason, refused))
    plan = read_plan(folder)
    if plan is not None and plan.sweeper == "grid":
        found = {run.folder.name for run in runs if run.folder is not None}
        ignored = set(excluded_keys(folder / "multirun.yaml")) - swept_by_sweep
        for name, job in plan.runs.items():
            if name not in found:
                values = {key.lstrip("+~"): value for key, _, value in (item.partition("=") for item in job)}
                values = {key: value for key, value in values.items() if key not in ignored}
                runs.append(Run(None, values, reason=reasons.get(name, "the sweep ended before it started")))
    elif plan is not None and plan.size is not None:  # a search: its trials are named as they are drawn
        runs += [Run(None, {}, reason="the search ended before it") for _ in range(plan.size - len(runs))]
    started = [run for run in runs if run.folder is not None] or runs
    keys = list(dict.fromkeys(key for run in runs for key in run.values))
    swept = [k for k in keys if len({run.values.get(k) for run in started}) > 1]
    fixed = {k: started[0].values[k] for k in keys if k not in swept and k in started[0].values} if started else {}
    described = [run.result for run in runs if run.result.get("monitor", "auto") != "auto"]  # failed early: unsettled
    one_monitor = len({result["monitor"] for result in described}) == 1  # (a sweep over experiments may have several)
    monitor = described[0]["monitor"] if described and one_monitor else BEST
    mode = described[0].get("monitor_mode", "max") if described and one_monitor else "max"
    planned = plan.size if plan is not None else None
    return Sweep(folder, runs, swept, fixed, monitor, mode, None if planned is None else max(planned, len(runs)))


def read_record(path: Path) -> tuple[dict[str, Any], str]:
    """A run's metrics.json, or {} and why a file there is not one (a run without it: {} and "")."""
    if not path.is_file():
        return {}, ""
    try:
        return read_json(path), ""
    except DataError as error:
        return {}, str(error)


def typed_values(overrides_file: Path, ignored: set[str]) -> dict[str, str]:
    """The keys a run's command line set (its .hydra/overrides.yaml), with their values as typed."""
    items = (item.split("=", 1) for item in yaml.safe_load(overrides_file.read_text()) or [] if "=" in item)
    return {key.lstrip("+~"): value for key, value in items if key.lstrip("+~") not in ignored}


def higher_is_better(sweep: Sweep, metric: str) -> bool:
    """As the monitored metric's mode says for `best`; times are better short; a logged metric, as its task declares
    (tasks' metric_modes); anything else higher."""
    if metric == BEST:
        return sweep.mode == "max"
    if metric.endswith("time_s"):
        return False
    return metric_mode(metric) != "min"


def metric_label(sweep: Sweep, metric: str) -> str:
    if metric != BEST:
        return metric
    return f"best {sweep.monitor}" if sweep.monitor != BEST else "best monitored metric"
