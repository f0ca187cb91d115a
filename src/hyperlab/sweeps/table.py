"""The homework table of a sweep: one row per run with its swept values, final metrics, best epoch, wall time and
status, best first, as `summary.md` and `summary.csv`; a heatmap of one metric over two swept keys; `curves.png`, the
monitored metric per epoch of every run; and, when the runs log to TensorBoard, the sweep folder's own TensorBoard
record (the HParams tab's columns: the swept keys and the headline metrics; the figures; the keys every run shares).

Written at the end of every sweep, and any time by `hyperlab-sweep-table folder=<sweep folder>`, which also works
on a sweep that was killed halfway: every run of its plan (hyperlab.sweeps.plan) is a row, a run whose process ended
before it wrote its record is `interrupted`, and a run that never started is `not run`, each with the reason.
"""

import csv
import itertools
import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.image
import numpy as np
import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf

from hyperlab.errors import ConfigError
from hyperlab.options import sorted_values
from hyperlab.run_folder import excluded_keys, folder_lock, short_names, sweep_keys, write_atomically
from hyperlab.sweeps.curves import Curve, curves_figure
from hyperlab.sweeps.plan import not_run_reasons, read_plan
from hyperlab.sweeps.records import FolderRecord, write_tensorboard_record
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
        return self.result.get("error") or self.result.get("note") or self.reason

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


def load_sweep(folder: Path) -> Sweep:
    """Read every run folder of `folder`, and every run its plan (plan.json) names that has none."""
    swept_by_sweep = sweep_keys(folder / "multirun.yaml")[0]
    reasons = not_run_reasons(folder)
    runs = []
    for overrides_file in sorted(folder.glob("*/.hydra/overrides.yaml")):
        run_folder = overrides_file.parent.parent
        ignored = set(excluded_keys(overrides_file.parent / "hydra.yaml")) - swept_by_sweep
        metrics_file = run_folder / "metrics.json"
        result = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
        reason = "" if result else reasons.get(run_folder.name, NO_RECORD)
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


def typed_values(overrides_file: Path, ignored: set[str]) -> dict[str, str]:
    """The keys a run's command line set (its .hydra/overrides.yaml), with their values as typed."""
    items = (item.split("=", 1) for item in yaml.safe_load(overrides_file.read_text()) or [] if "=" in item)
    return {key.lstrip("+~"): value for key, value in items if key.lstrip("+~") not in ignored}


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


def write_markdown(sweep: Sweep, path: Path, header: list[str], table: list[list[str]], metric: str) -> None:
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
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in table]
    path.write_text("\n".join(lines) + "\n")


def write_csv(path: Path, header: list[str], table: list[list[str]], runs: list[Run]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*header, "folder"])
        for row, run in zip(table, runs, strict=True):
            writer.writerow([*row, str(run.folder or "")])


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


def heatmap_figure(sweep: Sweep, metric: str, descending: bool, pivot: tuple[str, str], panels: str | None) -> Figure:
    """One panel per value of `panels`: `metric` over `pivot` (rows, columns); the best run where several share
    a cell; a cell whose runs all failed or diverged says so."""
    row_key, column_key = pivot
    row_values = sorted_values({run.values.get(row_key, "") for run in sweep.runs})
    column_values = sorted_values({run.values.get(column_key, "") for run in sweep.runs})
    panel_values = sorted_values({run.values.get(panels, "") for run in sweep.runs}) if panels else [""]
    names = short_names([row_key, column_key] + ([panels] if panels else []))
    finite = [run.metric(metric) for run in sweep.runs if not math.isnan(run.metric(metric))]
    low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
    figure = Figure(figsize=(1.1 * len(column_values) * len(panel_values) + 2.5, 0.6 * len(row_values) + 2))
    figure.set_layout_engine("constrained")
    axes_list = figure.subplots(1, len(panel_values), squeeze=False)[0]
    image = None
    for axes, panel in zip(axes_list, panel_values, strict=True):
        grid = np.full((len(row_values), len(column_values)), np.nan)
        labels = [["" for _ in column_values] for _ in row_values]
        for i, row_value in enumerate(row_values):
            for j, column_value in enumerate(column_values):
                cell = [
                    run for run in sweep.runs
                    if run.values.get(row_key, "") == row_value and run.values.get(column_key, "") == column_value
                    and (not panels or run.values.get(panels, "") == panel)
                ]  # fmt: skip
                values = [run.metric(metric) for run in cell if run.status in FINISHED]
                values = [v for v in values if not math.isnan(v)]
                if values:
                    grid[i, j] = max(values) if descending else min(values)
                    labels[i][j] = f"{grid[i, j]:.3f}"
                elif cell:
                    labels[i][j] = cell[0].status
        image = axes.imshow(grid, cmap="viridis" if descending else "viridis_r", vmin=low, vmax=high, aspect="auto")
        for i, j in itertools.product(range(len(row_values)), range(len(column_values))):
            color = "white" if not np.isnan(grid[i, j]) and (grid[i, j] - low) < 0.5 * (high - low) else "black"
            axes.text(j, i, labels[i][j], ha="center", va="center", fontsize=8, color=color if descending else "black")
        axes.set_xticks(range(len(column_values)), column_values)
        axes.set_yticks(range(len(row_values)), row_values)
        axes.set(xlabel=names[column_key], ylabel=names[row_key], title=f"{names[panels]}={panel}" if panels else "")
    figure.colorbar(image, ax=list(axes_list), label=metric_label(sweep, metric))
    figure.suptitle(f"{metric_label(sweep, metric)} per run")
    return figure


def curves(sweep: Sweep) -> Figure | None:
    """The monitored metric per epoch of every run that validated (metrics.json's history), coloured by the first
    swept key (sweeps/curves.py); None when no run has a history or nothing is swept."""
    if sweep.monitor == BEST or not sweep.swept:
        return None
    colour_key, style_key = sweep.swept[0], (sweep.swept[1] if len(sweep.swept) > 1 else "")
    lines = []
    for run in sweep.runs:
        points = [(row["epoch"], row[sweep.monitor]) for row in run.result.get("history", []) if sweep.monitor in row]
        if points:
            epochs, values = zip(*points, strict=True)
            colour, style = run.values.get(colour_key, ""), run.values.get(style_key, "")
            lines.append(Curve(colour, style, list(epochs), list(values)))
    if not lines:
        return None
    names = short_names([key for key in (colour_key, style_key) if key])
    colours = sorted_values({line.colour_value for line in lines})
    styles = sorted_values({line.style_value for line in lines})
    return curves_figure(lines, colours, styles, names[colour_key], names.get(style_key, ""), sweep.monitor)


def save_figure(figure: Figure, path: Path) -> np.ndarray:
    """Render `figure` once, write it as a PNG at `path`; its pixels (RGB) for TensorBoard."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    matplotlib.image.imsave(path, rgb)
    return rgb


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
    ending together take turns (the folder's lock)."""
    with folder_lock(folder):
        index = folder / INDEX_FILE
        if index.is_file():
            record = FolderRecord(**json.loads(index.read_text()))
            record.add(typed, result)
        else:
            record = folder_record(load_sweep(folder))
        write_atomically(index, json.dumps(asdict(record)) + "\n")
        write_tensorboard_record(folder, record, record.swept() if record.runs > 1 else list(record.fixed()))


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
    """Write summary.md, summary.csv, heatmap.png, curves.png and the TensorBoard record into the sweep `folder`."""
    sweep = load_sweep(folder)
    sort_metric = sort or metric
    runs = ranked(sweep, sort_metric, higher_is_better(sweep, sort_metric))
    header, table = rows(sweep, runs)
    summary = Summary(folder / "summary.md", folder / "summary.csv", None, None, {})
    write_markdown(sweep, summary.markdown, header, table, sort_metric)
    write_csv(summary.csv, header, table, runs)
    images: dict[str, np.ndarray] = {}
    if pivot is None and len(sweep.swept) >= 2:
        pivot = (sweep.swept[0], sweep.swept[1])
    if pivot is not None:
        if panels is None and len(sweep.swept) >= 3:
            panels = next(k for k in sweep.swept if k not in pivot)
        summary.heatmap = folder / "heatmap.png"
        heatmap = heatmap_figure(sweep, metric, higher_is_better(sweep, metric), pivot, panels)
        images["heatmap"] = save_figure(heatmap, summary.heatmap)
    figure = curves(sweep)
    if figure is not None:
        summary.curves = folder / "curves.png"
        images["curves"] = save_figure(figure, summary.curves)
    write_tensorboard_record(folder, folder_record(sweep), sweep.swept, images)
    kept = [run for run in runs if run.status in FINISHED and run.result.get("best_checkpoint")]
    if kept and not math.isnan(kept[0].metric(sort_metric)):
        summary.best = kept[0]
        summary.best_label = f"{metric_label(sweep, sort_metric)} {kept[0].metric(sort_metric):.4f}"
    summary.statuses = dict(Counter(run.status for run in sweep.runs))
    summary.accounted = accounted(sweep)
    return summary


def table_command(cfg: DictConfig) -> None:
    """hyperlab-sweep-table (conf/sweep_table.yaml)."""
    if OmegaConf.is_missing(cfg, "folder") or not Path(cfg.folder).is_dir():
        given = "folder is required" if OmegaConf.is_missing(cfg, "folder") else f"no sweep folder at {cfg.folder}"
        raise ConfigError(f"{given}: hyperlab-sweep-table folder=logs/<name>/multirun/<time>")
    folder = Path(cfg.folder)
    if cfg.pivot is not None and len(cfg.pivot) != 2:
        raise ConfigError(f"pivot={list(cfg.pivot)} is not allowed: expected two swept keys, [rows,columns]")
    summary = write_summary(folder, cfg.metric, cfg.sort, tuple(cfg.pivot) if cfg.pivot else None, cfg.panels)
    print(f"summary: {summary.markdown}\ntable:   {summary.csv}")
    if summary.heatmap:
        print(f"heatmap: {summary.heatmap}")
    if summary.curves:
        print(f"curves:  {summary.curves}")
    print(f"runs:    {summary.accounted}")


if __name__ == "__main__":  # python -m hyperlab.sweeps.table: the command hyperlab-sweep-table
    from hyperlab.cli import sweep_table_main

    sweep_table_main()
