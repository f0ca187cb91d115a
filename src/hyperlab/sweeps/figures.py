"""A sweep's figures: `heatmap.png`, a metric over two swept keys (one panel per value of a third), and `curves.png`,
the monitored metric per epoch of every run (hyperlab.sweeps.curves draws it)."""

import itertools
import math
from pathlib import Path

import matplotlib.image
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hyperlab.options import sorted_values
from hyperlab.run_folder import short_names
from hyperlab.sweeps.curves import Curve, curves_figure
from hyperlab.sweeps.runs import BEST, FINISHED, Sweep, metric_label


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
