"""A sweep's figures: `heatmap.png`, a metric over two swept keys (one panel per value of a third), and `curves.png`,
the monitored metric per epoch of every run (hyperlab.sweeps.curves draws it). Both are drawn to show the
differences between the runs that learned: a run at chance level (its note says so: hyperlab.tasks.chance), diverged
or failed is marked, and sets neither the heatmap's colour scale nor the curves' y-axis. With replicates (`repeats`,
`data.folds`), both show configurations (hyperlab.sweeps.statistics): a cell is a configuration's mean (± its std),
a curve the mean of its runs' curves with a band; a replicate key is never an axis, a panel, a colour or a style."""

import itertools
import math
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.image
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from hyperlab.options import sorted_values
from hyperlab.run_folder import short_names
from hyperlab.sweeps.comparisons import replicate_word
from hyperlab.sweeps.curves import Curve, Encoding, curves_figure, grid_columns, is_number, mean_curve, short
from hyperlab.sweeps.runs import BEST, FINISHED, Run, Sweep, metric_label
from hyperlab.sweeps.statistics import Configuration, configurations, replicated

AT_CHANCE = "at chance level"  # how the note of a run that learned nothing begins (hyperlab.tasks.chance)
FAR = 3.0  # a value more than FAR interquartile ranges beyond the worse quartile is far out (Tukey's "far out")
MARKED = "#e4e4e4"  # the background of a heatmap cell whose runs did not learn (hatched)


def not_learned(run: Run) -> str:
    """Why a run shows no result to compare ("" when it learned): `chance` (it completed at chance level),
    `diverged`, `failed`, `interrupted`, `not run`. A pruned run learned what it reached."""
    if run.status in ("completed", "pruned"):
        return "chance" if str(run.result.get("note") or "").startswith(AT_CHANCE) else ""
    return run.status


@dataclass
class ColourRange:
    low: float
    high: float
    left_out: int = 0  # values far on the bad side of the others, shown as the worst colour
    spanned: int = 0  # the values it spans


def colour_range(values: Iterable[float], higher_is_better: bool) -> ColourRange:
    """The range a scale spans for the values of the runs that learned: from the worst to the best, leaving out the
    values far on the bad side (more than FAR interquartile ranges beyond the worse quartile: a run that barely
    learned would squeeze the others into one colour); all of them when fewer than 5 or when that would leave one
    value. (0, 1) for no values."""
    finite = np.array([value for value in values if math.isfinite(value)], dtype=float)
    if finite.size == 0:
        return ColourRange(0.0, 1.0)
    kept = finite
    if finite.size >= 5:
        low_quartile, high_quartile = np.percentile(finite, [25, 75])
        spread = FAR * (high_quartile - low_quartile)
        kept = finite[finite >= low_quartile - spread] if higher_is_better else finite[finite <= high_quartile + spread]
        if kept.min() == kept.max():
            kept = finite
    low, high = float(kept.min()), float(kept.max())
    if low == high:
        low, high = low - 0.5 * max(abs(low) * 0.01, 1e-3), high + 0.5 * max(abs(high) * 0.01, 1e-3)
    return ColourRange(low, high, int(finite.size - kept.size), int(kept.size))


def levels(values: Iterable[str], most: int, groups: int) -> tuple[list[str], dict[str, str]]:
    """The levels a key's values are shown as, in order, and each value's level: every value its own when there
    are at most `most` (or they are not numbers; a long number to 3 digits); else `groups` ranges of about as many
    values each (an Optuna search's continuous values: `0.00012-0.00061`)."""
    distinct = sorted_values(set(values))
    if len(distinct) <= most or not all(is_number(value) for value in distinct):
        return [*dict.fromkeys(short(value) for value in distinct)], {value: short(value) for value in distinct}
    names, level_of = [], {}
    for chunk in np.array_split(np.array(distinct, dtype=object), groups):
        first, last = (value if len(value) <= 6 else f"{float(value):.2g}" for value in (chunk[0], chunk[-1]))
        name = first if len(chunk) == 1 else f"{first}-{last}"
        names.append(name)
        level_of.update(dict.fromkeys(chunk, name))
    return names, level_of


def best_of(runs: list[Run], metric: str, descending: bool) -> tuple[float, str, Run | None]:
    """What a heatmap cell shows: the best value of its runs that learned; else the best value of the others (a
    diverged run's best so far, a run at chance level's), with its mark; else the first run's mark, no value."""
    pick = max if descending else min
    for learned in (True, False):
        scored = [(run.metric(metric), run) for run in runs if (not not_learned(run)) == learned]
        scored = [(value, run) for value, run in scored if not math.isnan(value) and run.status in FINISHED]
        if scored:
            value, run = pick(scored, key=lambda pair: pair[0])
            return value, not_learned(run), run
    return math.nan, not_learned(runs[0]) if runs else "", None


def heatmap_figure(sweep: Sweep, metric: str, descending: bool, pivot: tuple[str, str], panels: str | None) -> Figure:
    """One panel per value of `panels`: `metric` over `pivot` (rows, columns); the best run where several share
    a cell. The colour scale spans the runs that learned (colour_range); a cell whose runs did not is grey and
    hatched, with its mark and value (`chance`, `diverged`, `failed`); the best cell is outlined."""
    row_key, column_key = pivot
    runs = [run for run in sweep.runs if run.values]  # (a search's trials that never began have no values)
    rows, row_of = levels((run.values.get(row_key, "") for run in runs), 12, 6)
    columns, column_of = levels((run.values.get(column_key, "") for run in runs), 12, 6)
    panel_values, panel_of = levels((run.values.get(panels, "") for run in runs), 9, 4) if panels else ([""], {})
    names = short_names([row_key, column_key] + ([panels] if panels else []))
    found = configurations(sweep, metric)
    repeated = replicated(sweep, found)
    cells: dict[tuple[str, str, str], list[Configuration]] = {}
    for configuration in found:  # (best first: a cell of several configurations shows its first)
        values = configuration.runs[0].values
        place = (panel_of.get(values.get(panels or "", ""), ""), row_of[values.get(row_key, "")],
                 column_of[values.get(column_key, "")])  # fmt: skip
        cells.setdefault(place, []).append(configuration)
    shown = {place: cell_value(cell, metric, descending, repeated) for place, cell in cells.items()}
    spreads = {place: cell[0].spreads[metric].std if repeated else math.nan for place, cell in cells.items()}
    scale = colour_range((value for value, mark, _ in shown.values() if not mark), descending)
    norm = Normalize(scale.low, scale.high)
    cmap = matplotlib.colormaps["viridis" if descending else "viridis_r"]
    learned = [(value, place) for place, (value, mark, _) in shown.items() if not mark and not math.isnan(value)]
    best_place = (max if descending else min)(learned)[1] if learned else None
    n_columns = grid_columns(len(panel_values))
    n_rows = math.ceil(len(panel_values) / n_columns)
    width = n_columns * (1.0 * len(columns) + 1.0) + 2.2
    figure = Figure(figsize=(max(width, 6.5), n_rows * (0.55 * len(rows) + 1.2) + 1.6), layout="constrained")
    grid = figure.subplots(n_rows, n_columns, squeeze=False)
    image = None
    for axes, panel in zip(grid.flat, panel_values, strict=False):
        values = np.full((len(rows), len(columns)), np.nan)
        for (i, row), (j, column) in itertools.product(enumerate(rows), enumerate(columns)):
            value, mark, _ = shown.get((panel, row, column), (math.nan, "", None))
            if not mark:
                values[i, j] = value
        image = axes.imshow(values, cmap=cmap, norm=norm, aspect="auto")
        for (i, row), (j, column) in itertools.product(enumerate(rows), enumerate(columns)):
            if (panel, row, column) in shown:
                draw_cell(axes, i, j, *shown[(panel, row, column)][:2], cmap, norm, spreads[(panel, row, column)])
            if (panel, row, column) == best_place:
                axes.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2.5))
        axes.set_xticks(range(len(columns)), columns)
        axes.set_yticks(range(len(rows)), rows)
        axes.set(xlabel=names[column_key], ylabel=names[row_key])
        axes.set_title(f"{names[panels]}={panel}" if panels else "", fontsize=10)
    for axes in grid.flat[len(panel_values) :]:
        axes.set_visible(False)
    label = metric_label(sweep, metric)
    scale_said = f"{label}\ncolours: the runs that learned, {scale.low:.4g} to {scale.high:.4g}"
    if scale.spanned <= 1:
        scale_said = f"{label}\n({'one run' if scale.spanned else 'no run'} learned)"
    if scale.left_out:
        scale_said += f"\n({scale.left_out} far {'below' if descending else 'above'}: the end colour)"
    extend = ("min" if descending else "max") if scale.left_out else "neither"
    figure.colorbar(image, ax=list(grid.flat[: len(panel_values)]), label=scale_said, extend=extend, shrink=0.9)
    several = any(len(cell) > 1 for cell in cells.values())
    drawn = (row_key, column_key, panels)
    averaged = averaged_over(sweep, found) if repeated else ""
    said = heatmap_title(sweep, label, shown, best_place, several, drawn, figure.get_figwidth(), averaged)
    figure.suptitle(said, fontsize=11)
    return figure


def cell_value(cell: list[Configuration], metric: str, descending: bool, repeated: bool) -> tuple[float, str, Run]:
    """What a cell shows of its configurations (best first): without replicates the best run (best_of); with them,
    the first configuration's mean over its finished runs, marked as its best run is (hatched only when none of
    its runs learned)."""
    if not repeated:
        return best_of([run for configuration in cell for run in configuration.runs], metric, descending)
    value, mark, run = best_of(cell[0].runs, metric, descending)
    score = cell[0].spreads[metric]
    return (value if mark or not score.n else score.mean), mark, run or cell[0].runs[0]


def averaged_over(sweep: Sweep, found: list[Configuration]) -> str:
    """`mean of 3 repeats` (`mean over 5 folds`; `mean of 2-3 repeats` when some did not finish)."""
    counts = sorted({len(configuration.runs) for configuration in found})
    count = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    word = replicate_word(sweep)
    return f"mean over {count} folds" if word == "folds" else f"mean of {count} {word}"


def draw_cell(axes: Axes, i: int, j: int, value: float, mark: str, cmap: Colormap, norm: Normalize,
              std: float = math.nan) -> None:  # fmt: skip
    """A cell's text (with replicates, `±std` on a second line), black or white against its colour; a cell whose
    runs did not learn: grey and hatched."""
    text = "" if math.isnan(value) else f"{value:.3f}"
    if text and not math.isnan(std):
        text += f"\n\u00b1{std:.3f}"
    if mark:
        axes.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=MARKED, edgecolor="#b4b4b4", hatch="///",
                                 linewidth=0))  # fmt: skip
        said = "at chance" if mark == "chance" else mark
        box = {"boxstyle": "round,pad=0.15", "facecolor": MARKED, "edgecolor": "none"}  # (over the hatching)
        axes.text(j, i, f"{said}\n{text}" if text else said, ha="center", va="center", fontsize=8, color="#333333",
                  bbox=box)  # fmt: skip
        return
    if not text:  # (a run that learned without this metric)
        axes.text(j, i, "no value", ha="center", va="center", fontsize=8, color="#777777")
        return
    red, green, blue, _ = cmap(norm(value))
    dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
    axes.text(j, i, text, ha="center", va="center", fontsize=8.5, color="white" if dark else "black")


def heatmap_title(sweep: Sweep, label: str, shown: dict, best: tuple | None, several: bool, drawn: tuple,
                  width: float, averaged: str = "") -> str:  # fmt: skip
    """What the heatmap shows (per run, or `averaged` per configuration), where its best is, what a cell of several
    shows, what the hatching means; wrapped to the figure's `width` (inches)."""
    marks = sorted({mark for _, mark, _ in shown.values() if mark})
    said = [f"{label}, {averaged} (\u00b1 their std) per configuration" if averaged else f"{label} per run"]
    if several:
        others = [name for key, name in short_names(sweep.compared).items() if key not in drawn]
        said[0] += f"; a cell: the best of its {'configurations' if averaged else 'runs'}"
        said[0] += f" (over {', '.join(others)})" if others else ""
    if best is not None:
        run = shown[best][2]
        names = short_names(sweep.compared)
        values = ", ".join(f"{name}={short(run.values.get(key, ''))}" for key, name in names.items())
        said.append(f"outlined: the best, {shown[best][0]:.4f} ({values})")
    if marks:
        which = ", ".join("at chance level" if mark == "chance" else mark for mark in marks)
        said.append(f"hatched: runs that did not learn ({which}): not in the colour scale")
    return "\n".join(textwrap.fill(line, int(width * 13)) for line in said)  # (about 13 characters an inch)


def curves(sweep: Sweep, pivot: tuple[str, str] | None = None, panels: str | None = None) -> Figure | None:
    """The monitored metric per epoch of every run that validated (metrics.json's history), as small multiples
    (hyperlab.sweeps.curves): one panel per value of `panels` (by default the third swept key, as the heatmap's),
    colour by the first key of `pivot` (by default the first swept key), line style by the second; the best 3 runs
    that learned highlighted; the y-axis the range of the runs that learned. With replicates, one curve per
    configuration: the mean of its runs (mean_curve), with a band of ± their std. None when no run has a history or
    nothing but replicates is swept."""
    keys = sweep.compared
    if sweep.monitor == BEST or not keys:
        return None
    colour_key, style_key = pivot or (keys[0], keys[1] if len(keys) > 1 else "")
    if panels is None and len(keys) >= 3:
        panels = next(key for key in keys if key not in (colour_key, style_key))
    runs = [run for run in sweep.runs if run.values and run.status not in ("interrupted", "not run")]
    styles, style_of = levels((run.values.get(style_key, "") for run in runs), 4, 4) if style_key else ([""], {})
    panel_values, panel_of = levels((run.values.get(panels, "") for run in runs), 9, 4) if panels else ([""], {})
    names = short_names(list(dict.fromkeys([*sweep.swept, *(key for key in (colour_key, style_key, panels) if key)])))
    found = configurations(sweep, BEST)
    averaged = averaged_over(sweep, found) if replicated(sweep, found) else ""
    drawn = {id(run) for run in runs}
    groups = [[run for run in c.runs if id(run) in drawn] for c in found] if averaged else [[run] for run in runs]
    lines = []
    for group in filter(None, groups):
        line = curve_of(group[0], sweep, names) if not averaged else configuration_curve(group, sweep, names)
        if line is not None:
            run = group[0]
            line.colour_value = run.values.get(colour_key, "")
            line.style = style_of.get(run.values.get(style_key, ""), "")
            line.panel = panel_of.get(run.values.get(panels or "", ""), "")
            lines.append(line)
    if not any(line.epochs for line in lines):
        return None
    learned = [line for line in lines if not line.mark and line.epochs and not math.isnan(line.score)]
    learned.sort(key=lambda line: -line.score if sweep.mode == "max" else line.score)
    for rank, line in enumerate(learned[: highlighted(len(learned))], start=1):
        line.rank = rank
    scale = colour_range([v for line in learned for v in line.values] or [v for line in lines for v in line.values],
                         sweep.mode == "max")  # fmt: skip
    pad = 0.04 * (scale.high - scale.low)
    colour_values = sorted_values({line.colour_value for line in lines if not line.mark and line.epochs})
    encoding = Encoding(names[colour_key], colour_values, names.get(style_key, ""), styles,
                        names.get(panels or "", ""), panel_values, averaged)  # fmt: skip
    return curves_figure(lines, encoding, sweep.monitor, (scale.low - pad, scale.high + pad), scale.left_out)


def curve_of(run: Run, sweep: Sweep, names: dict[str, str]) -> Curve | None:
    """A run's curve of the monitored metric (its finite values), its mark and its best value; None for a run that
    learned but has no history."""
    points = [(row["epoch"], row[sweep.monitor]) for row in run.result.get("history", [])
              if isinstance(row.get(sweep.monitor), (int, float)) and math.isfinite(row[sweep.monitor])]  # fmt: skip
    mark = not_learned(run)
    if not points and not mark:
        return None
    epochs, values = ([p[0] for p in points], [p[1] for p in points])
    score = run.metric(BEST)
    if math.isnan(score) and values:
        score = max(values) if sweep.mode == "max" else min(values)
    label = ", ".join(f"{names[key]}={short(run.values.get(key, ''))}" for key in sweep.swept)
    return Curve(label, "", "", "", epochs, values, mark, score=score)


def configuration_curve(runs: list[Run], sweep: Sweep, names: dict[str, str]) -> Curve | None:
    """A configuration's curve: the mean of its runs' curves that learned (of all of them when none did), labelled
    by its swept values, scored by its mean best value."""
    members = [curve for curve in (curve_of(run, sweep, names) for run in runs) if curve is not None]
    if not members:
        return None
    label = ", ".join(f"{names[key]}={short(runs[0].values.get(key, ''))}" for key in sweep.compared)
    return mean_curve(members, label, sweep.mode == "max")


def highlighted(learned: int) -> int:
    """How many of the best runs the curves highlight: 3, fewer for small sweeps (one of 2 to 7, two of 8 to 11)."""
    return min(3, max(learned // 4, 1)) if learned >= 2 else 0


def save_figure(figure: Figure, path: Path) -> np.ndarray:
    """Render `figure` once, write it as a PNG at `path`; its pixels (RGB) for TensorBoard."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    matplotlib.image.imsave(path, rgb)
    return rgb
