"""The homework table of a sweep: one row per run with its swept values, final metrics, best epoch, wall time and
status, best first, as `summary.md` and `summary.csv`; with replicates (`repeats`, `data.folds`), each
configuration's statistics and the answer in words before it (hyperlab.sweeps.comparisons) and in
`configurations.csv`; with its figures (hyperlab.sweeps.figures; for the optimizer playground's runs,
hyperlab.sweeps.playground: every run's path in one grid and where each ended) and, when the runs log to TensorBoard,
the sweep folder's own TensorBoard record (hyperlab.sweeps.records).

Written at the end of every sweep, and any time by `hyperlab-sweep-table folder=<sweep folder>`, which also works
on a sweep that was killed halfway: every run of its plan (hyperlab.sweeps.plan) is a row, a run whose process ended
before it wrote its record is `interrupted`, and a run that never started is `not run`, each with the reason.
"""

import csv
import logging
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from hyperlab.errors import ConfigError, DataError
from hyperlab.folder_locks import folder_lock
from hyperlab.json_files import json_text, read_json, reason_of, write_atomically
from hyperlab.run_folder import short_names
from hyperlab.spreadsheet import spreadsheet_text
from hyperlab.sweeps.comparisons import conclusion, markdown_section, write_configurations_csv
from hyperlab.sweeps.figures import curves, heatmap_figure, save_figure
from hyperlab.sweeps.plan import PLAN_FILE
from hyperlab.sweeps.playground import grid_figure, playground_grid
from hyperlab.sweeps.playground import markdown_section as playground_section
from hyperlab.sweeps.records import (
    FolderRecord,
    configuration_sessions,
    write_ranked_sessions,
    write_tensorboard_record,
)
from hyperlab.sweeps.runs import BEST, FINISHED, INDEX_FILE, Run, Sweep, higher_is_better, load_sweep, metric_label
from hyperlab.sweeps.statistics import Configuration, configurations, replicated

log = logging.getLogger(__name__)


def ranked(sweep: Sweep, metric: str, descending: bool) -> list[Run]:
    """Runs with a value of `metric` first, best first; then the others in folder order."""

    def key(run: Run) -> tuple[int, float]:
        value = run.metric(metric)
        if math.isnan(value) or run.status not in FINISHED or (metric == BEST and sweep.monitor == BEST):
            return (1, 0.0)
        return (0, -value if descending else value)

    return sorted(sweep.runs, key=key)


def metric_columns(sweep: Sweep) -> list[str]:
    names = {name for run in sweep.runs for name in run.result.get("metrics", {}) if not name.startswith("params/")}
    order = {"train": 0, "val": 1, "test": 2}
    return sorted(names, key=lambda name: (order.get(name.split("/")[0], 3), name))


def rows(sweep: Sweep, runs: list[Run]) -> tuple[list[str], list[list[str]]]:
    """The table: the swept values, the status, the best of the monitored metric, the final metrics (each column
    says when it was measured: train and val at the last epoch, test on the best checkpoint), the wall time and a
    note; a column that is empty in every row, or repeats another column, is left out (a regression's test/mse is
    its test/loss)."""
    names = short_names(sweep.swept)
    metrics = metric_columns(sweep)
    header = [names[k] for k in sweep.swept] + ["status", metric_label(sweep, BEST), "best epoch"]
    header += [f"{m} ({'best checkpoint' if m.startswith('test/') else 'last epoch'})" for m in metrics]
    header += ["wall time (s)", "note"]
    table = []
    for run in runs:
        result = run.result
        best = number(result.get("best_score"))
        if best and sweep.monitor == BEST:  # (runs that monitor different metrics: each says which)
            best += f" ({result.get('monitor')})"
        cells = [run.values.get(k, "") for k in sweep.swept] + [run.status, best]
        cells += [str(result.get("best_epoch") or ""), *(number(result.get("metrics", {}).get(m)) for m in metrics)]
        cells += [number(result.get("wall_time_s"), 1), run.note]
        table.append(cells)
    columns = [[row[i] for row in table] for i in range(len(header))]
    first_metric = len(sweep.swept) + 3  # (a metric column repeating another metric column: a definition's twin)
    kept = [i for i, column in enumerate(columns) if any(column) and column not in columns[first_metric:i]]
    kept = kept if table else list(range(len(header)))
    return [header[i] for i in kept], [[row[i] for i in kept] for row in table]


def number(value: Any, digits: int = 4) -> str:
    return "" if value is None else f"{float(value):.{digits}f}"


def accounted(sweep: Sweep) -> str:
    """`64 planned runs: 61 completed, 2 diverged, 1 not run` (`8 runs: ...` for a sweep without a plan)."""
    counts = Counter(run.status for run in sweep.runs)
    total = f"{sweep.planned} planned runs" if sweep.planned is not None else f"{len(sweep.runs)} runs"
    return f"{total}: " + ", ".join(f"{n} {status}" for status, n in counts.items())


def write_markdown(sweep: Sweep, path: Path, header: list[str], table: list[list[str]], metric: str,
                   section: list[str]) -> None:  # fmt: skip
    """The header lines, the `section` on the configurations (hyperlab.sweeps.comparisons), then the runs."""
    lines = [
        f"# Sweep summary: {sweep.folder.name}",
        "",
        f"{accounted(sweep)}. "
        + (
            "Not sorted: the runs monitor different metrics."
            if metric == BEST and sweep.monitor == BEST
            else f"Sorted by {metric_label(sweep, metric)}, best first."
        ),  # fmt: skip
    ]
    if sweep.fixed:
        lines.append("Same in every run: " + ", ".join(f"`{k}={v}`" for k, v in sweep.fixed.items()) + ".")
    lines += [*section, "", "## Runs", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in table]
    path.write_text("\n".join(lines) + "\n")


def write_csv(path: Path, header: list[str], table: list[list[str]], runs: list[Run],
              ranks: dict[int, int] | None) -> None:  # fmt: skip
    """summary.csv: the table and each run's folder; with replicates, the rank of each run's configuration too
    (`ranks`: by id(run); configurations.csv's `configuration`), for a join."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        names = [*header, *(["configuration"] if ranks is not None else []), "folder"]
        writer.writerow([spreadsheet_text(cell) for cell in names])
        for row, run in zip(table, runs, strict=True):
            rank = [] if ranks is None else [ranks.get(id(run), "")]
            writer.writerow([spreadsheet_text(cell) for cell in [*row, *rank, str(run.folder or "")]])


def folder_record(sweep: Sweep) -> FolderRecord:
    """What the sweep's runs recorded, for its TensorBoard record (hyperlab.sweeps.records)."""
    record = FolderRecord()
    for run in sweep.runs:
        if run.result.get("hparams"):
            record.add(run.values, run.result)
    return record


def write_experiment_record(folder: Path, typed: dict[str, str], result: dict[str, Any]) -> None:
    """An experiment folder's TensorBoard record (`logs/<name>/`) with the run that just ended in it on its own (not
    in a sweep) added: `tensorboard --logdir logs/<name>` opens on the keys its runs' command lines set to different
    values (for one run: the keys it set), the status and the headline metrics. The folder keeps what its runs
    recorded in `.hyperlab-runs.json`, which each run adds to (the folder of an earlier hyperlab: read once); runs
    ending together take turns (the folder's lock). A disk too full for it leaves it as it was, with a warning (the
    run's own record is written)."""
    try:
        with folder_lock(folder):
            index = folder / INDEX_FILE
            try:
                record = FolderRecord(**read_json(index))
            except (OSError, DataError, TypeError):  # none yet, or not one: made from the runs' records
                record = folder_record(load_sweep(folder))
            else:
                record.add(typed, result)
            write_atomically(index, json_text(asdict(record)))
            write_tensorboard_record(folder, record, record.swept() if record.runs > 1 else list(record.fixed()))
    except OSError as error:
        log.warning(f"{folder}: its TensorBoard record of the experiment's runs was not updated ({reason_of(error)})")


@dataclass
class Summary:
    markdown: Path
    csv: Path
    heatmap: Path | None
    curves: Path | None
    statuses: dict[str, int]
    accounted: str = ""  # summary.md's first line: the runs by status, against the plan
    best: Run | None = None  # the best run that kept a best checkpoint
    best_label: str = ""  # what it is best by, with its value
    leaders: list[str] = field(default_factory=list)  # the folder names of the best five runs TensorBoard shows
    tensorboard_runs: int = 0  # the TensorBoard runs in the folder (its runs that wrote TensorBoard's, its summary)
    configurations: Path | None = None  # configurations.csv: one row per configuration, best first
    playground: Path | None = None  # playground.png: the optimizer playground's paths, one panel per run
    conclusion: str = ""  # with replicates: the best configuration and how many are indistinguishable from it

    @property
    def unfinished(self) -> int:
        """Planned runs that did not complete, diverge or get pruned (failed, interrupted, not run)."""
        return sum(n for status, n in self.statuses.items() if status not in FINISHED)


def write_summary(
    folder: Path,
    metric: str = BEST,
    sort: str | None = None,
    pivot: tuple[str, str] | None = None,
    panels: str | None = None,
) -> Summary:
    """Write summary.md, summary.csv, heatmap.png, curves.png (playground.png for the optimizer playground's runs)
    and the TensorBoard record into the sweep `folder`."""
    sweep = load_sweep(folder)
    check_metric(sweep, "metric", metric)
    check_metric(sweep, "sort", sort)
    sort_metric = sort or metric
    runs = ranked(sweep, sort_metric, higher_is_better(sweep, sort_metric))
    header, table = rows(sweep, runs)
    summary = Summary(folder / "summary.md", folder / "summary.csv", None, None, {})
    unsorted = sort_metric == BEST and sweep.monitor == BEST  # (the runs monitor different metrics: `ranked`)
    tests = [name.removesuffix(" (best checkpoint)") for name in header if name.startswith("test/")]
    found = configurations(sweep, sort_metric, tests)
    section = [] if unsorted else markdown_section(sweep, found, sort_metric, tests)
    grid = playground_grid(sweep)
    section += playground_section(grid) if grid is not None else []
    write_markdown(sweep, summary.markdown, header, table, sort_metric, section)
    summary.configurations = folder / "configurations.csv"
    write_configurations_csv(summary.configurations, sweep, found, sort_metric, tests)
    write_csv(summary.csv, header, table, runs, rank_of_runs(found) if replicated(sweep, found) else None)
    summary.conclusion = "" if unsorted else conclusion(sweep, found, sort_metric)
    images: dict[str, np.ndarray] = {}
    if pivot is None and len(sweep.compared) >= 2:
        pivot = (sweep.compared[0], sweep.compared[1])
    if pivot is not None:
        if panels is None and len(sweep.compared) >= 3:
            panels = next(k for k in sweep.compared if k not in pivot)
        summary.heatmap = folder / "heatmap.png"
        heatmap = heatmap_figure(sweep, metric, higher_is_better(sweep, metric), pivot, panels)
        images["heatmap"] = save_figure(heatmap, summary.heatmap)
    figure = curves(sweep, pivot, panels)
    if figure is not None:
        summary.curves = folder / "curves.png"
        images["curves"] = save_figure(figure, summary.curves)
    if grid is not None:
        summary.playground = folder / "playground.png"
        images["playground"] = save_figure(grid_figure(grid), summary.playground)
    repeated = replicated(sweep, found) and not unsorted
    sessions = configuration_sessions(sweep, found, [sort_metric, *tests]) if repeated else []
    write_tensorboard_record(folder, folder_record(sweep), sweep.swept, images, summary.markdown.read_text(), sessions)
    write_ranked_sessions(runs, ranked=not unsorted, configuration_ranks=rank_of_runs(found) if repeated else None)
    summary.tensorboard_runs = len({path.parent for path in folder.glob("**/events.out.tfevents.*")})
    kept = [run for run in runs if run.status in FINISHED and run.result.get("best_checkpoint")]
    if kept and not math.isnan(kept[0].metric(sort_metric)):
        summary.best = kept[0]
        summary.best_label = f"{metric_label(sweep, sort_metric)} {kept[0].metric(sort_metric):.4f}"
    if not unsorted:  # (the best five with TensorBoard curves: the runs the sweep's end opens TensorBoard on)
        drawn = [run for run in runs if run.folder and any(run.folder.glob("events.out.tfevents.*"))]
        finished = [run for run in drawn if run.status in FINISHED and not math.isnan(run.metric(sort_metric))]
        summary.leaders = [run.folder.name for run in finished[:5] if run.folder is not None]
    summary.statuses = dict(Counter(run.status for run in sweep.runs))
    summary.accounted = accounted(sweep)
    return summary


def check_metric(sweep: Sweep, key: str, metric: str | None) -> None:
    """A metric to rank or draw by is `best` or one the runs recorded (`metric_names`): a misspelt one would rank
    nothing. (A sweep none of whose runs recorded a metric yet has nothing to check it against.)"""
    known = metric_names(sweep)
    if metric is not None and metric != BEST and known and metric not in known:
        raise ConfigError(f"{key}={metric} is not allowed: expected {BEST} or a metric the runs recorded: "
                          + ", ".join(sorted(known)))  # fmt: skip


def metric_names(sweep: Sweep) -> set[str]:
    """What `Run.metric` reads: the runs' metrics and the numbers of their records (wall_time_s, epochs, ...)."""
    names = {name for run in sweep.runs for name in run.result.get("metrics", {})}
    numbers = {key for run in sweep.runs for key, value in run.result.items() if isinstance(value, (int, float))}
    return names | numbers


def is_sweep(folder: Path) -> bool:
    """Whether `folder` holds a sweep: Hydra's multirun.yaml or hyperlab's plan.json, or runs (their overrides.yaml)."""
    return (
        (folder / "multirun.yaml").is_file()
        or (folder / PLAN_FILE).is_file()
        or any(folder.glob("*/.hydra/overrides.yaml"))
    )


def rank_of_runs(found: list[Configuration]) -> dict[int, int]:
    """Each run's configuration's rank, by id(run)."""
    return {id(run): configuration.rank for configuration in found for run in configuration.runs}


def table_command(cfg: DictConfig) -> None:
    """hyperlab-sweep-table (conf/sweep_table.yaml)."""
    if OmegaConf.is_missing(cfg, "folder") or not Path(cfg.folder).is_dir():
        given = "folder is required" if OmegaConf.is_missing(cfg, "folder") else f"no sweep folder at {cfg.folder}"
        raise ConfigError(f"{given}: hyperlab-sweep-table folder=logs/<name>/multirun/<time>")
    folder = Path(cfg.folder)
    if not is_sweep(folder):  # (its summary.md, if any, is not the sweep's to overwrite)
        raise ConfigError(f"folder={cfg.folder} is not allowed: it holds no sweep (no multirun.yaml, plan.json or run "
                          "folders): expected logs/<name>/multirun/<time>")  # fmt: skip
    if cfg.pivot is not None and len(cfg.pivot) != 2:
        raise ConfigError(f"pivot={list(cfg.pivot)} is not allowed: expected two swept keys, [rows,columns]")
    summary = write_summary(folder, cfg.metric, cfg.sort, tuple(cfg.pivot) if cfg.pivot else None, cfg.panels)
    print(f"summary: {summary.markdown}\ntable:   {summary.csv}")
    if summary.configurations:
        print(f"configurations: {summary.configurations}")
    if summary.heatmap:
        print(f"heatmap: {summary.heatmap}")
    if summary.curves:
        print(f"curves:  {summary.curves}")
    if summary.playground:
        print(f"paths:   {summary.playground}")
    print(f"runs:    {summary.accounted}")
