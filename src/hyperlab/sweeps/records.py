"""The TensorBoard record of a folder of runs (a sweep's, or an experiment's runs on their own, `logs/<name>/`): the
HParams tab's columns (the keys the runs set differently, the status, the headline metrics), the keys every run
shares (Text tab) and the sweep's figures (loggers/tensorboard.py writes it).

What the record needs is kept as a `FolderRecord`: per key, the distinct values the runs had, which a new run adds
to without reading the others. A sweep builds it from its runs at its end (hyperlab.sweeps.table); an experiment's
folder keeps it in `.hyperlab-runs.json` and each run adds itself, so a run's cost does not grow with the runs made
before it in the same folder (docs/benchmarks.md, "A run beside earlier runs").

A sweep with replicates (`repeats`, `data.folds`) adds one HParams session per configuration, in the summary run's
folder (`summary/config-01/`, by rank): its swept values, how many runs it averages (`repeats`), the status
`configuration`, and the mean and std of its metrics (`val/acc_best mean`) as metric columns; each run's row is
named after its configuration's rank, so that a configuration's row and its runs' rows are listed together.
"""

import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hyperlab.loggers.tensorboard import (
    BEST_SUFFIX,
    SESSION,
    STATUS,
    SUMMARY_RUN,
    all_whole,
    headline_metrics,
    write_folder_record,
    write_session,
)
from hyperlab.sweeps.runs import BEST, Run, Sweep
from hyperlab.sweeps.statistics import Configuration
from hyperlab.tasks import TASKS

SESSIONS = f"events.out.tfevents.*{SESSION}"  # a run's HParams session, written by hyperlab's logger
CONFIGURATION = "configuration"  # the status of a configuration's session (the status column filters them)
REPEATS = "repeats"  # the column of a configuration's session: the runs its statistics are over
STATISTICS = ("mean", "std")  # a configuration's metrics: `<metric tag> mean`, `<metric tag> std`


@dataclass
class ConfigurationSession:
    """A configuration's HParams session: its folder under the summary run (`config-01`), its row's name (led by its
    rank), its hyper-parameters (its swept values and `repeats`) and its metrics (`val/acc_best mean`, ...)."""

    name: str
    group: str
    hparams: dict[str, Any]
    metrics: dict[str, float]
    started: float
    ended: float


@dataclass
class FolderRecord:
    """What the runs of a folder recorded, as distinct values per key (plain data: JSON)."""

    runs: int = 0
    typed: dict[str, list[str]] = field(default_factory=dict)  # keys typed on a run's command line: values as typed
    typed_runs: dict[str, int] = field(default_factory=dict)  # how many runs typed each
    values: dict[str, list[Any]] = field(default_factory=dict)  # every hyper-parameter: the values runs recorded
    present: dict[str, int] = field(default_factory=dict)  # how many runs recorded each
    statuses: list[str] = field(default_factory=list)
    kind: str | None = None  # the task of the first run (its headline metric)
    monitor: str | None = None

    def add(self, typed: dict[str, str], result: dict[str, Any]) -> None:
        """A run: the keys its command line set (`typed`) and its metrics.json (`result`, with its hparams)."""
        self.runs += 1
        for key, value in typed.items():
            add_value(self.typed, key, value)
            self.typed_runs[key] = self.typed_runs.get(key, 0) + 1
        for key, value in {**result["hparams"], STATUS: result["status"]}.items():
            add_value(self.values, key, value)
            self.present[key] = self.present.get(key, 0) + 1
        if self.kind is None and result.get("kind") in TASKS:
            self.kind, self.monitor = result["kind"], result.get("monitor")

    def swept(self) -> list[str]:
        """The typed keys whose value differs between runs (or that some runs did not type)."""
        return [key for key, values in self.typed.items() if len(values) > 1 or self.typed_runs[key] < self.runs]

    def fixed(self) -> dict[str, str]:
        """The typed keys every run set to the same value."""
        swept = set(self.swept())
        return {key: values[0] for key, values in self.typed.items() if key not in swept}

    def shared(self) -> dict[str, Any]:
        """The hyper-parameters that have one value in every run."""
        return {key: values[0] for key, values in self.values.items()
                if key != STATUS and len(values) == 1 and self.present[key] == self.runs}  # fmt: skip


def add_value(values: dict[str, list[Any]], key: str, value: Any) -> None:
    """`value` into the distinct values of `key` (1, 1.0 and True are three values; NaN is one)."""
    seen = values.setdefault(key, [])
    if not any(type(other) is type(value) and (other == value or other != other and value != value) for other in seen):
        seen.append(value)


def write_tensorboard_record(folder: Path, record: FolderRecord, shown: list[str],
                             images: dict[str, np.ndarray] | None = None, table: str = "",
                             configurations: list[ConfigurationSession] | None = None) -> None:  # fmt: skip
    """The folder's TensorBoard record, when its runs wrote TensorBoard's: the `shown` keys with the values the
    runs recorded (those TensorBoard filters on) and the status, the headline metrics of the task the runs trained,
    the figures, the `table` (summary.md) and the keys every run shares; and the `configurations`' sessions, with
    their `repeats` and their metrics as columns."""
    for old in (folder / SUMMARY_RUN).glob("config-*"):
        shutil.rmtree(old, ignore_errors=True)
    if not record.runs or not any(folder.glob("*/events.out.tfevents.*")):  # (runs of an older hyperlab: none)
        return
    configurations = configurations or []
    columns = {}
    for key in [*(key.lstrip("+") for key in shown), STATUS]:
        values = [value for value in record.values.get(key, []) if value is not None]
        columns[key] = sorted(values, key=lambda value: (str(type(value)), value))
    if configurations:
        columns[STATUS].append(CONFIGURATION)
        columns[REPEATS] = sorted({session.hparams[REPEATS] for session in configurations})
    score = TASKS[record.kind].headline if record.kind else ""
    headline = headline_metrics(record.monitor or "", f"test/{score}") if record.kind else []
    headline += list(dict.fromkeys(tag for session in configurations for tag in session.metrics))
    compared = ["loss", score] if score else ["loss"]
    for old in folder.glob("events.out.tfevents.*.sweep"):  # (an earlier hyperlab's record, in the folder itself)
        old.unlink()
    texts = {"summary": table} if table else {}
    texts["same in every run"] = shared_values(record)
    write_folder_record(folder, columns, headline, texts, images or {}, compared)
    fractional = {key for key, values in record.values.items() if not all_whole(values)}
    for session in configurations:
        write_session(folder / SUMMARY_RUN / session.name, session.hparams, CONFIGURATION, session.started,
                      session.ended, session.group, fractional, session.metrics)  # fmt: skip


def rank_width(configurations: int) -> int:
    """The digits of a configuration's rank in its sessions' names: `#01`, `config-01` (more past 99)."""
    return max(2, len(str(configurations)))


def configuration_sessions(sweep: Sweep, found: list[Configuration], metrics: list[str]) -> list[ConfigurationSession]:
    """A session per configuration with a finished run (`found`: ranked), its `metrics`' means and stds (`best`:
    the monitored metric's best, `val/acc_best`, as the runs' column)."""
    width = rank_width(len(found))
    sessions = []
    for configuration in found:
        counted = configuration.spreads[metrics[0]].n if metrics else 0
        if not counted:
            continue
        hparams = {**recorded_values(configuration), REPEATS: counted}
        scalars = {}
        for metric in metrics:
            tag = f"{sweep.monitor}{BEST_SUFFIX}" if metric == BEST else metric
            spread = configuration.spreads[metric]
            for statistic, value in zip(STATISTICS, (spread.mean, spread.std), strict=True):
                if math.isfinite(value):
                    scalars[f"{tag} {statistic}"] = value
        rank = f"{configuration.rank:0{width}d}"
        label = ",".join(f"{key.rsplit('.', 1)[-1]}={value}" for key, value in configuration.values.items())
        started, ended = session_times(configuration.runs)
        sessions.append(ConfigurationSession(f"config-{rank}", f"#{rank} (mean of {counted}) {label}", hparams,
                                             scalars, started, ended))  # fmt: skip
    return sessions


def recorded_values(configuration: Configuration) -> dict[str, Any]:
    """The configuration's swept values as its runs recorded them (their hparams: `0.001` a number, as in the runs'
    rows, so that the columns sort and filter them together); as typed where no run recorded one."""
    values = dict(configuration.values)
    for key in values:
        recorded = (run.result["hparams"][key] for run in configuration.runs if key in run.result.get("hparams", {}))
        values[key] = next(recorded, values[key])
    return values


def session_times(runs: list[Run]) -> tuple[float, float]:
    """When the first of `runs` started and the last ended (their metrics.json's times; now when none has one)."""
    spans = []
    for run in runs:
        if run.folder is not None and run.result and (run.folder / "metrics.json").is_file():
            ended = (run.folder / "metrics.json").stat().st_mtime
            spans.append((ended - float(run.result.get("wall_time_s") or 0), ended))
    now = time.time()
    return min((span[0] for span in spans), default=now), max((span[1] for span in spans), default=now)


def write_ranked_sessions(runs: list[Run], ranked: bool, configuration_ranks: dict[int, int] | None = None) -> None:
    """Each run's HParams session again, its group name led by its rank when the runs are `ranked` (`runs`: best
    first), so that TensorBoard's HParams table opens in that order (hyperlab.loggers.tensorboard), or with
    replicates by its configuration's rank (`configuration_ranks`, by id(run): `#01 <run folder>`); a column with
    fractions among its numbers gets its whole numbers as numbers too. Only the sessions hyperlab's logger wrote
    (`*.session`) are rewritten: a run of Lightning's own logger or of an older hyperlab keeps its own."""
    recorded = [run for run in runs if run.folder and run.result.get("hparams") and any(run.folder.glob(SESSIONS))]
    columns: dict[str, list[Any]] = {}
    for run in recorded:
        for key, value in run.result["hparams"].items():
            columns.setdefault(key, []).append(value)
    fractional = {key for key, values in columns.items() if not all_whole(values)}
    width = len(str(len(recorded)))
    if configuration_ranks:
        width = rank_width(max(configuration_ranks.values()))
    for rank, run in enumerate(recorded, 1):
        assert run.folder is not None
        ended = (run.folder / "metrics.json").stat().st_mtime
        started = ended - float(run.result.get("wall_time_s") or 0)
        shown = configuration_ranks.get(id(run), 0) if configuration_ranks else rank
        group = f"#{shown:0{width}d} {run.folder.name}" if ranked else ""
        write_session(run.folder, run.result["hparams"], run.status, started, ended, group, fractional)


def shared_values(record: FolderRecord) -> str:
    """Markdown: the keys typed for every run, and every hyper-parameter that has one value in all of them."""
    typed = ", ".join(f"`{key}={value}`" for key, value in record.fixed().items()) or "nothing"
    rows = [f"| {key} | {value} |" for key, value in record.shared().items()]
    return "\n".join([f"Typed for every run: {typed}.", "", "| hyper-parameter | value |", "|---|---|", *rows])
