"""The homework table of a sweep: one row per run with its swept values, final metrics, best epoch, wall time and
status, best first, as `summary.md` and `summary.csv`; a heatmap of one metric over two swept keys; `curves.png`, the
monitored metric per epoch of every run; and, when the runs log to TensorBoard, the sweep folder's own TensorBoard
record (the HParams tab's columns: the swept keys and the headline metrics; the figures; the keys every run shares).

Written at the end of every sweep, and any time by `hyperlab-sweep-table folder=<sweep folder>`, which also works
on a sweep that was killed halfway: runs that never finished are listed with the status `not finished`, and runs of
the grid that never started with `not started`.
"""

import csv
import itertools
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.image
import numpy as np
import yaml
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf

from hyperlab.errors import ConfigError
from hyperlab.loggers.tensorboard import STATUS, headline_metrics, write_folder_record
from hyperlab.options import sorted_values
from hyperlab.run_folder import excluded_keys, folder_lock, short_names, sweep_overrides
from hyperlab.sweeps.curves import Curve, curves_figure
from hyperlab.tasks import TASKS, metric_mode

BEST = "best"  # the metric name that means: the run's best value of its monitored validation metric
FINISHED = ("completed", "diverged", "pruned")  # statuses with metrics to rank (a pruned run: what it reached)


@dataclass
class Run:
    """One job of the sweep: the values it set and what its metrics.json says (if it got that far)."""

    folder: Path | None
    values: dict[str, str]
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if self.folder is None:
            return "not started"
        return self.result.get("status", "not finished")

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


def load_sweep(folder: Path) -> Sweep:
    """Read every run folder of `folder` (and, from multirun.yaml, the grid it was meant to cover)."""
    runs = []
    for overrides_file in sorted(folder.glob("*/.hydra/overrides.yaml")):
        run_folder = overrides_file.parent.parent
        ignored = set(excluded_keys(overrides_file.parent / "hydra.yaml"))
        values = dict(item.split("=", 1) for item in yaml.safe_load(overrides_file.read_text()) or [])
        values = {key: value for key, value in values.items() if key not in ignored}
        metrics_file = run_folder / "metrics.json"
        result = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
        runs.append(Run(run_folder, values, result))
    expected = planned_grid(folder / "multirun.yaml")
    keys = list(dict.fromkeys(k for combination in expected for k in combination))
    keys += [k for run in runs for k in run.values if k not in keys]
    for combination in expected:
        if not any(all(run.values.get(k) == v for k, v in combination.items()) for run in runs):
            runs.append(Run(None, combination))
    swept = [k for k in keys if len({run.values.get(k) for run in runs}) > 1]
    fixed = {k: runs[0].values[k] for k in keys if k not in swept and k in runs[0].values} if runs else {}
    described = [run.result for run in runs if run.result.get("monitor", "auto") != "auto"]  # failed early: unsettled
    monitor = described[0]["monitor"] if described else BEST
    mode = described[0].get("monitor_mode", "max") if described else "max"
    return Sweep(folder, runs, swept, fixed, monitor, mode)


def planned_grid(multirun_file: Path) -> list[dict[str, str]]:
    """The value combinations a basic-sweeper grid covers, from the sweep's multirun.yaml ([] if unknown)."""
    if not multirun_file.is_file():
        return []
    hydra = yaml.safe_load(multirun_file.read_text()).get("hydra", {})
    if "BasicSweeper" not in str(hydra.get("sweeper", {}).get("_target_", "")):
        return []
    choices: dict[str, list[str]] = {}
    for override in sweep_overrides(multirun_file):
        key = override.get_key_element()
        if override.is_sweep_override():
            choices[key] = list(override.sweep_string_iterator())
        else:
            choices[key] = [override.get_value_element_as_str()]
    return [dict(zip(choices, combination, strict=True)) for combination in itertools.product(*choices.values())]


def ranked(sweep: Sweep, metric: str, descending: bool) -> list[Run]:
    """Runs with a value of `metric` first, best first; then the others in folder order."""

    def key(run: Run) -> tuple[int, float]:
        value = run.metric(metric)
        if math.isnan(value) or run.status not in FINISHED:
            return (1, 0.0)
        return (0, -value if descending else value)

    return sorted(sweep.runs, key=key)


def metric_columns(sweep: Sweep) -> list[str]:
    names = {name for run in sweep.runs for name in run.result.get("metrics", {}) if not name.startswith("params/")}
    order = {"train": 0, "val": 1, "test": 2}
    return sorted(names, key=lambda name: (order.get(name.split("/")[0], 3), name))


def rows(sweep: Sweep, runs: list[Run]) -> tuple[list[str], list[list[str]]]:
    names = short_names(sweep.swept)
    metrics = metric_columns(sweep)
    header = [names[k] for k in sweep.swept] + ["status", f"best {sweep.monitor}", "best epoch", *metrics]
    header += ["wall time (s)", "note"]
    table = []
    for run in runs:
        result = run.result
        cells = [run.values.get(k, "") for k in sweep.swept] + [run.status, number(result.get("best_score"))]
        cells += [str(result.get("best_epoch") or ""), *(number(result.get("metrics", {}).get(m)) for m in metrics)]
        cells += [number(result.get("wall_time_s"), 1), result.get("error") or ""]
        table.append(cells)
    return header, table


def number(value: Any, digits: int = 4) -> str:
    return "" if value is None else f"{float(value):.{digits}f}"


def write_markdown(sweep: Sweep, path: Path, header: list[str], table: list[list[str]], metric: str) -> None:
    counts = Counter(run.status for run in sweep.runs)
    lines = [
        f"# Sweep summary: {sweep.folder.name}",
        "",
        f"{len(sweep.runs)} runs: "
        + ", ".join(f"{n} {status}" for status, n in counts.items())
        + f". Sorted by {metric_label(sweep, metric)}, best first.",
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
    return f"best {sweep.monitor}" if metric == BEST else metric


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


def write_tensorboard_record(sweep: Sweep, images: dict[str, np.ndarray], shown: list[str] | None = None) -> None:
    """The folder's TensorBoard record (loggers/tensorboard.py), when its runs wrote TensorBoard's: the `shown` keys
    (default: the swept ones) as the runs recorded them (metrics.json's hparams, the values TensorBoard filters on)
    and the status, the headline metrics of the task the runs trained, the figures and the keys every run shares."""
    recorded = [run.result for run in sweep.runs if run.result.get("hparams")]
    if not recorded or not any(sweep.folder.glob("*/events.out.tfevents.*")):  # (runs of an older hyperlab: none)
        return
    columns: dict[str, list[Any]] = {}
    for key in [key.lstrip("+") for key in (sweep.swept if shown is None else shown)] + [STATUS]:
        values = {result["hparams"].get(key) if key != STATUS else result["status"] for result in recorded}
        columns[key] = sorted(values - {None}, key=lambda value: (str(type(value)), value))
    kinds = [result["kind"] for result in recorded if result.get("kind") in TASKS]
    headline = headline_metrics(sweep.monitor, f"test/{TASKS[kinds[0]].headline}") if kinds else []
    write_folder_record(sweep.folder, columns, headline, shared_values(sweep, recorded), images)


def write_experiment_record(folder: Path) -> None:
    """The TensorBoard record of an experiment's folder (`logs/<name>/`), rewritten after each run made in it on its
    own (not in a sweep): `tensorboard --logdir logs/<name>` opens on the keys its runs' command lines set to
    different values (for one run: the keys it set), the status and the headline metrics. Runs ending together
    take turns (the folder's lock)."""
    with folder_lock(folder):
        sweep = load_sweep(folder)
        write_tensorboard_record(sweep, {}, sweep.swept if len(sweep.runs) > 1 else list(sweep.fixed))


def shared_values(sweep: Sweep, recorded: list[dict[str, Any]]) -> str:
    """Markdown: the keys typed for every run, and every hyper-parameter that has one value in all of them."""
    first = recorded[0]["hparams"]
    shared = {key: value for key, value in first.items() if all(r["hparams"].get(key) == value for r in recorded)}
    typed = ", ".join(f"`{key}={value}`" for key, value in sweep.fixed.items()) or "nothing"
    rows = [f"| {key} | {value} |" for key, value in shared.items()]
    return "\n".join([f"Typed for every run: {typed}.", "", "| hyper-parameter | value |", "|---|---|", *rows])


@dataclass
class Summary:
    markdown: Path
    csv: Path
    heatmap: Path | None
    curves: Path | None
    statuses: dict[str, int]


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
    write_tensorboard_record(sweep, images)
    summary.statuses = dict(Counter(run.status for run in sweep.runs))
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
    print("runs:    " + ", ".join(f"{n} {status}" for status, n in summary.statuses.items()))


if __name__ == "__main__":  # python -m hyperlab.sweeps.table: the command hyperlab-sweep-table
    from hyperlab.cli import sweep_table_main

    sweep_table_main()
