"""The optimizer playground's figures and table (experiment=optimizer_playground): a run's path on its function
(`figures/path.png`, drawn by hyperlab.callbacks.playground from the run's `path.json`), and a sweep's grid of every
run's path on the same background (`playground.png`, rows by learning rate, columns by momentum) with its section of
summary.md: each run's final loss and distance to the minimum, the course's "Goldilocks" comparison in numbers.

Torch-free (numpy and matplotlib): `hyperlab-sweep-table` draws it without importing torch.
"""

import json
import math
import textwrap
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from hyperlab.data.functions import COORDINATES, FUNCTIONS, Landscape
from hyperlab.json_files import write_atomically
from hyperlab.options import sorted_values
from hyperlab.run_folder import short_names
from hyperlab.sweeps.curves import short
from hyperlab.sweeps.runs import Run, Sweep

PATH_FILE = "path.json"  # in a playground run's folder: every point it visited
NEAR = 0.1  # a run that ends this close to a global minimum reached it
LEVELS = 20  # contour levels, log-spaced from the lowest to the highest height drawn
FLOOR = 1e-3  # the lowest contour level (the height is 0 at the minimum: no log there)
REACH = 0.5  # a path's points within this many view widths beyond the function's own view widen the view
NUMBERED = 21  # a run's figure numbers the points of a path of at most this many (20 steps)
ROW_KEY, COLUMN_KEY = "optimizer.lr", "optimizer.momentum"  # the grid's rows and columns, when the sweep varies them


@dataclass
class PathRecord:
    """A run's path: the start and the point after each optimizer step, with the loss (the height above the global
    minimum) at each; what `path.json` holds."""

    function: str
    optimizer: str  # the optimizer's class name (SGD)
    options: dict[str, float]  # its learning rate and momentum, as given
    points: list[list[float]]
    losses: list[float]
    status: str  # completed | diverged
    steps: list[int] = field(default_factory=list)  # the optimizer step of each point (0: the start)

    @property
    def landscape(self) -> Landscape:
        return FUNCTIONS[self.function]

    @property
    def label(self) -> str:
        """`SGD lr=0.01 momentum=0.9`."""
        return " ".join([self.optimizer, *(f"{key}={value:g}" for key, value in self.options.items())])

    @property
    def final_loss(self) -> float:
        return self.losses[-1]

    @property
    def distance(self) -> float:
        """From the last point to the nearest global minimum (inf for a point that is not finite)."""
        point = np.array(self.points[-1], dtype=float)
        if not np.isfinite(point).all():
            return math.inf
        return float(min(np.linalg.norm(point - np.array(minimum)) for minimum in self.landscape.minima))

    @property
    def rises(self) -> int:
        """The steps after which the loss was higher than before: the swings."""
        return sum(after > before for before, after in zip(self.losses, self.losses[1:], strict=False))

    def summary(self) -> str:
        """`final loss 0.516, distance to the minimum 0.19 (reached)`, what the run's figure's title says."""
        if self.status == "diverged":
            return f"diverged after {self.steps[-1] if self.steps else len(self.points) - 1} steps"
        said = f"final loss {self.final_loss:.3g}, distance to the minimum {self.distance:.3g}"
        return said + (" (reached)" if self.distance <= NEAR else "")

    def write(self, folder: Path) -> Path:
        path = folder / PATH_FILE
        write_atomically(path, json.dumps(asdict(self), indent=1) + "\n")
        return path


def read_path(folder: Path) -> PathRecord | None:
    """A run folder's path.json (None: none, or not one this version writes)."""
    path = folder / PATH_FILE
    try:
        record = PathRecord(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return record if record.function in FUNCTIONS and record.points else None


# -- drawing --------------------------------------------------------------------------------------------------------
def finite_points(records: list[PathRecord]) -> np.ndarray:
    rows = [point for record in records for point in record.points]
    points = np.array(rows, dtype=float).reshape(len(rows), -1)
    return points[np.isfinite(points).all(axis=1)]


def view_of(landscape: Landscape, records: list[PathRecord]) -> tuple[np.ndarray, np.ndarray]:
    """The region drawn: the function's own view, widened to the paths' points that stay within REACH of its widths
    (a diverging path leaves the figure rather than shrink the function to a dot), with a margin."""
    low, high = (np.array(corner, dtype=float) for corner in landscape.view)
    width = high - low
    points = finite_points(records)
    near = points[((points >= low - REACH * width) & (points <= high + REACH * width)).all(axis=1)]
    if len(near):
        low, high = np.minimum(low, near.min(axis=0)), np.maximum(high, near.max(axis=0))
    margin = 0.04 * (high - low)
    return low - margin, high + margin


def draw_landscape(axes: Axes, landscape: Landscape, view: tuple[np.ndarray, np.ndarray], resolution: int) -> Any:
    """The function over the view: its curve (one parameter), or its height's contours on log-spaced levels (two);
    its global minima as stars. Returns the filled contours (None for a curve), for a colour bar."""
    low, high = view
    minima = np.array(landscape.minima, dtype=float)
    if landscape.dims == 1:
        xs = np.linspace(low[0], high[0], 4 * resolution)
        values = landscape.formula(xs)
        axes.plot(xs, values, color="tab:blue", linewidth=1.5)
        spread = values.max() - values.min()
        axes.set_ylim(values.min() - 0.05 * spread, values.max() + 0.05 * spread)
        axes.plot(minima[:, 0], landscape.formula(minima[:, 0]), "*", color="gold", markeredgecolor="black",
                  markersize=14, label="global minimum", zorder=5)  # fmt: skip
        axes.set(xlabel="x", ylabel="f(x)", xlim=(low[0], high[0]))
        return None
    xs, ys = np.meshgrid(np.linspace(low[0], high[0], resolution), np.linspace(low[1], high[1], resolution))
    heights = np.maximum(landscape.height(xs, ys), FLOOR)
    levels = np.logspace(math.log10(FLOOR), math.log10(max(heights.max(), 10 * FLOOR)), LEVELS)
    filled = axes.contourf(xs, ys, heights, levels=levels, norm=LogNorm(levels[0], levels[-1]), cmap="viridis_r")
    axes.contour(xs, ys, heights, levels=levels, colors="white", linewidths=0.3, alpha=0.6)
    axes.plot(minima[:, 0], minima[:, 1], "*", color="gold", markeredgecolor="black", markersize=14,
              label="global minimum", zorder=5)  # fmt: skip
    axes.set(xlabel="x", ylabel="y", xlim=(low[0], high[0]), ylim=(low[1], high[1]))
    return filled


def draw_path(axes: Axes, record: PathRecord, colour: str = "tab:red", numbered: bool = False) -> None:
    """The points joined in order, the start (a circle) and the end (a cross); on a curve, each point at its
    height; `numbered`: each point's step beside it (as the course's figure), for a short path."""
    points = np.array(record.points, dtype=float).reshape(len(record.points), -1)
    points = points[np.isfinite(points).all(axis=1)]
    if not len(points):
        return
    xs = points[:, 0]
    ys = record.landscape.formula(xs) if record.landscape.dims == 1 else points[:, 1]
    axes.plot(xs, ys, "-o", color=colour, markersize=3, linewidth=1.2, label="path", zorder=3)
    axes.plot(xs[:1], ys[:1], "o", color="white", markeredgecolor="black", markersize=8, label="start", zorder=4)
    axes.plot(xs[-1:], ys[-1:], "X", color=colour, markeredgecolor="black", markersize=10, label="end", zorder=4)
    if numbered and len(xs) <= NUMBERED:
        for step, (x, y) in enumerate(zip(xs, ys, strict=True)):
            axes.annotate(str(step), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7, color=colour)


def path_figure(record: PathRecord, resolution: int) -> Figure:
    """A run's path on its function, titled with the optimizer, its lr and momentum, and where it ended."""
    landscape = record.landscape
    figure = Figure(figsize=(6.5, 5.2), layout="constrained")
    axes = figure.add_subplot()
    filled = draw_landscape(axes, landscape, view_of(landscape, [record]), resolution)
    draw_path(axes, record, numbered=True)
    if filled is not None:
        bar = figure.colorbar(filled, ax=axes, label="f - f(minimum) (log scale)")
        low, high = filled.levels[0], filled.levels[-1]
        bar.set_ticks([10.0**k for k in range(math.ceil(math.log10(low)), math.floor(math.log10(high)) + 1)])
    axes.legend(loc="best", fontsize=8)
    steps = record.steps[-1] if record.steps else len(record.points) - 1
    axes.set_title(f"{record.function}: {landscape.text}\n{record.label}, {steps} steps\n{record.summary()}",
                   fontsize=10)  # fmt: skip
    return figure


# -- a sweep's runs -------------------------------------------------------------------------------------------------
@dataclass
class Grid:
    """A playground sweep's runs by row value (lr) and column value (momentum)."""

    row_key: str
    column_key: str  # "" when the sweep varies one key
    rows: list[str]
    columns: list[str]
    cells: dict[tuple[str, str], list[PathRecord]]


def playground_grid(sweep: Sweep) -> Grid | None:
    """The sweep's playground runs (those with a path.json) placed by lr and momentum (or the first two keys it
    varies); None when it has none."""
    found = [(run, read_path(run.folder)) for run in sweep.runs if run.folder is not None]
    placed = [(run, record) for run, record in found if record is not None]
    keys = sweep.compared
    if not placed or not keys:
        return None
    row_key = ROW_KEY if ROW_KEY in keys else keys[0]
    others = [key for key in keys if key != row_key]
    column_key = COLUMN_KEY if COLUMN_KEY in others else (others[0] if others else "")
    cells: dict[tuple[str, str], list[PathRecord]] = {}
    for run, record in placed:
        cells.setdefault(place(run, row_key, column_key), []).append(record)
    rows = sorted_values({row for row, _ in cells})
    columns = sorted_values({column for _, column in cells})
    return Grid(row_key, column_key, rows, columns, cells)


def place(run: Run, row_key: str, column_key: str) -> tuple[str, str]:
    return run.values.get(row_key, ""), run.values.get(column_key, "") if column_key else ""


def grid_figure(grid: Grid, resolution: int = 200) -> Figure:
    """One panel per (lr, momentum): the runs' paths on the same function, over the same view."""
    records = [record for cell in grid.cells.values() for record in cell]
    landscape = records[0].landscape  # (a sweep over functions: each panel draws its own runs on the first's view)
    kept = [r for r in records if r.function == records[0].function and r.status != "diverged"]
    view = view_of(landscape, kept)  # (a diverged path leaves its panel: the others keep their scale)
    names = short_names([key for key in (grid.row_key, grid.column_key) if key])
    n_rows, n_columns = len(grid.rows), len(grid.columns)
    figure = Figure(figsize=(3.4 * n_columns + 0.6, 2.9 * n_rows + 0.9), layout="constrained")
    panels = figure.subplots(n_rows, n_columns, squeeze=False)
    for (i, row), (j, column) in ((r, c) for r in enumerate(grid.rows) for c in enumerate(grid.columns)):
        axes = panels[i, j]
        cell = grid.cells.get((row, column), [])
        placed = ((grid.row_key, row), (grid.column_key, column))
        said = [f"{names[key]}={short(value)}" for key, value in placed if key]
        draw_landscape(axes, cell[0].landscape if cell else landscape, view, resolution)
        for record, colour in zip(cell, ("tab:red", "tab:orange", "tab:pink", "tab:brown"), strict=False):
            draw_path(axes, record, colour)
        outcome = panel_outcome(cell) if cell else "not run"
        axes.set_title(", ".join(said) + f"\n{outcome}", fontsize=9)
        axes.label_outer()
    first = records[0]
    steps = max((r.steps[-1] if r.steps else len(r.points) - 1) for r in records)
    start = ", ".join(f"{name}={value:g}" for name, value in zip(COORDINATES, first.points[0], strict=False))
    title = (f"{first.function}: {landscape.text}, from {start}; {first.optimizer}, up to {steps} steps (circle: "
             "start, cross: end, star: the global minimum)")  # fmt: skip
    figure.suptitle(textwrap.fill(title, int(figure.get_figwidth() * 12)), fontsize=10)
    return figure


def panel_outcome(cell: list[PathRecord]) -> str:
    """A panel's second title line: where its run ended (the first run's, with a count of the others)."""
    record = cell[0]
    if record.status == "diverged":
        said = record.summary()
    else:
        said = f"loss {record.final_loss:.3g}, distance {record.distance:.3g}"
    return said + (f" (+{len(cell) - 1} more)" if len(cell) > 1 else "")


def outcome_cell(record: PathRecord) -> str:
    """A summary table cell: the final loss and distance, whether it reached the minimum, how often the loss rose."""
    if record.status == "diverged":
        return record.summary()
    said = f"loss {record.final_loss:.3g}, distance {record.distance:.3g}"
    said += " (reached)" if record.distance <= NEAR else ""
    steps = len(record.losses) - 1
    return said + (f"; the loss rose in {record.rises} of {steps} steps" if record.rises else "")


def markdown_section(grid: Grid) -> list[str]:
    """summary.md's playground section: the final loss and distance of each (lr, momentum), as the course's table
    of learning rate against momentum."""
    records = [record for cell in grid.cells.values() for record in cell]
    landscape = records[0].landscape
    minima = "; ".join(", ".join(f"{v:g}" for v in minimum) for minimum in landscape.minima)
    names = short_names([key for key in (grid.row_key, grid.column_key) if key])
    corner = f"{names[grid.row_key]} \\ {names[grid.column_key]}" if grid.column_key else names[grid.row_key]
    lines = [
        "",
        "## The optimizer playground: where each run ended",
        "",
        f"{records[0].function}: {landscape.text}, global minimum at ({minima}); started at "
        f"({', '.join(f'{v:g}' for v in records[0].points[0])}). Loss: the height above the global minimum; distance: "
        f"to the nearest global minimum (reached: within {NEAR:g}). The paths: playground.png.",
        "",
        "| " + " | ".join([corner, *(short(column) or "-" for column in grid.columns)]) + " |",
        "|" + "---|" * (len(grid.columns) + 1),
    ]
    for row in grid.rows:
        cells = [" / ".join(outcome_cell(r) for r in grid.cells.get((row, column), [])) for column in grid.columns]
        lines.append("| " + " | ".join([short(row), *cells]) + " |")
    return lines
