"""A sweep's `curves.png`: the monitored validation metric per epoch of every run, drawn to be read at 64 runs and
more. One panel per level of the panel key (the heatmap's panels: depth for the homework); in a panel, the colour
says the first swept key (the course's learning-rate comparison: a colour bar when its values are continuous, an
Optuna search's), the line style the second. The best few runs are thick and numbered (their values in the legend),
the other runs that learned thin; runs that did not learn (at chance level, diverged) are grey and do not set the
y-axis, which spans the runs that learned. hyperlab.sweeps.figures reads the sweep into `Curve`s; this draws them."""

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Colormap, ListedColormap, LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

LINE_STYLES = ("-", "--", ":", "-.")
DIMMED = "#a8a8a8"  # the curves of runs that did not learn
BOX = {"facecolor": "white", "edgecolor": "none", "alpha": 0.8}  # behind a label on the curves
Colour = Callable[[str], tuple[float, float, float, float]]  # a value of the colour key -> its colour (RGBA)
SEQUENTIAL = ListedColormap(matplotlib.colormaps["plasma"](np.linspace(0.0, 0.85, 256)))  # (no pale yellow)


@dataclass
class Curve:
    """One run's curve: what tells it apart (its value of the colour key, its levels of the style and panel keys:
    "" without such a key) and its points; `mark` says why a run did not learn ("" when it did: `chance`,
    `diverged`, `failed` - a failed run has no points, it is only counted); `rank` is 1, 2, 3 for the best runs."""

    label: str  # its swept values, short (`lr=0.001, hidden=512, depth=2`)
    colour_value: str
    style: str
    panel: str
    epochs: list[float]
    values: list[float]
    mark: str = ""
    rank: int = 0
    score: float = math.nan  # its best value of the metric (a configuration's: the mean of its runs')
    low: list[float] = field(default_factory=list)  # a configuration's band (mean ± std per epoch; none for a run)
    high: list[float] = field(default_factory=list)


@dataclass
class Encoding:
    """How the curves are told apart: the keys (short names; "" for none) and their levels in order."""

    colour_key: str
    colour_values: list[str]
    style_key: str = ""
    styles: list[str] = field(default_factory=lambda: [""])
    panel_key: str = ""
    panels: list[str] = field(default_factory=lambda: [""])
    averaged: str = ""  # a curve per configuration, the mean of its runs (`mean of 3 repeats`); "": a curve per run

    @property
    def continuous(self) -> bool:
        """A colour map with a colour bar rather than a colour per value (numbers with many distinct values)."""
        return numeric(self.colour_values) and len(self.colour_values) > 8


def curves_figure(curves: list[Curve], encoding: Encoding, metric: str, ylim: tuple[float, float],
                  cut: int = 0) -> Figure:  # fmt: skip
    """The small multiples; `ylim`: the range of the runs that learned (`cut` of their points lie beyond it)."""
    panels = encoding.panels
    columns = grid_columns(len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(4.3 * columns + 3.2, 3.1 * rows + 1.1), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False, sharex=True, sharey=True)
    colour_of, mappable = colours(encoding)
    styles = {style: LINE_STYLES[i] if len(encoding.styles) <= len(LINE_STYLES) else "-"
              for i, style in enumerate(encoding.styles)}  # fmt: skip
    right = max((epoch for curve in curves for epoch in curve.epochs), default=1.0)
    crowded = max(sum(1 for c in curves if c.panel == panel and c.epochs) for panel in panels) > 24
    thin = {"linewidth": 0.7, "alpha": 0.6} if crowded else {"linewidth": 1.0, "alpha": 0.75}
    for axes, panel in zip(grid.flat, panels, strict=False):
        draw_panel(axes, [curve for curve in curves if curve.panel == panel], colour_of, styles, thin, ylim, metric)
        axes.set_title(f"{encoding.panel_key}={panel}" if encoding.panel_key else "", fontsize=10)
    for axes in grid.flat[len(panels) :]:
        axes.set_visible(False)
    grid[0, 0].set_ylim(*ylim)
    left = min((epoch for curve in curves for epoch in curve.epochs), default=0.0)
    if right - left < 1:  # (one validation: a point in the middle)
        grid[0, 0].set_xlim(left - 0.5, right + 0.5)
    else:
        grid[0, 0].set_xlim(left, right + 0.07 * (right - left))  # (room for the numbers)
    if all(float(epoch).is_integer() for curve in curves for epoch in curve.epochs):
        grid[0, 0].xaxis.set_major_locator(MaxNLocator(integer=True))
    for axes in grid[-1, :]:
        axes.set_xlabel("epoch")
    for axes in grid[:, 0]:
        axes.set_ylabel(metric)
    for index in range(len(panels), rows * columns):  # an empty slot: the panel above it labels the epochs
        grid[index // columns - 1, index % columns].xaxis.set_tick_params(labelbottom=True)
    figure.legend(handles=legend_handles(curves, encoding, colour_of, styles), loc="outside right upper", fontsize=8,
                  title=None)  # fmt: skip
    if mappable is not None:
        figure.colorbar(mappable, ax=list(grid.flat[: len(panels)]), label=encoding.colour_key, shrink=0.8,
                        pad=0.02)  # fmt: skip
    figure.suptitle(title(curves, encoding, metric, cut), fontsize=11)
    return figure


def draw_panel(axes: Axes, curves: list[Curve], colour_of: Colour, styles: dict[str, str], thin: dict[str, float],
               ylim: tuple[float, float], metric: str) -> None:  # fmt: skip
    """A panel's curves: the runs that did not learn grey, beneath; the others thin; the best thick, on top."""
    for curve in sorted(curves, key=lambda c: (not c.mark, c.rank > 0, -c.rank)):
        if not curve.epochs:
            continue
        alone = {"marker": "o", "markersize": 3} if len(curve.epochs) == 1 else {}  # (one point: no line to draw)
        if curve.low:
            colour = DIMMED if curve.mark else colour_of(curve.colour_value)
            axes.fill_between(curve.epochs, curve.low, curve.high, color=colour, linewidth=0,
                              alpha=0.25 if curve.rank else 0.12, zorder=3 if curve.rank else 1)  # fmt: skip
        if curve.mark:
            axes.plot(curve.epochs, curve.values, color=DIMMED, linestyle=styles[curve.style], linewidth=0.8,
                      alpha=0.7, zorder=1, **alone)  # fmt: skip
        elif curve.rank:
            axes.plot(curve.epochs, curve.values, color=colour_of(curve.colour_value), linewidth=2.6,
                      linestyle=styles[curve.style], marker="o" if len(curve.epochs) < 20 else None, markersize=3.5,
                      zorder=4)  # fmt: skip
        else:
            axes.plot(curve.epochs, curve.values, color=colour_of(curve.colour_value), linestyle=styles[curve.style],
                      zorder=2, **thin, **alone)  # fmt: skip
    number_the_best(axes, [curve for curve in curves if curve.rank and curve.epochs], ylim, colour_of)
    say_what_is_off_the_axis(axes, curves, ylim, metric)
    axes.grid(alpha=0.3)


def colours(encoding: Encoding) -> tuple[Colour, ScalarMappable | None]:
    """A colour per value of the colour key: ordered numbers a sequential map, text a qualitative one; many numbers
    (an Optuna search's): a colour map over their range (logarithmic when they span decades), with its colour bar."""
    values = encoding.colour_values
    if encoding.continuous:
        numbers = [float(value) for value in values]
        low, high = min(numbers), max(numbers)
        norm = LogNorm(low, high) if low > 0 and high / low >= 20 else Normalize(low, high)
        mappable = ScalarMappable(norm, SEQUENTIAL)
        return (lambda value: mappable.to_rgba(float(value))), mappable
    if numeric(values):
        table = {value: SEQUENTIAL(i / max(len(values) - 1, 1)) for i, value in enumerate(values)}
    else:
        cmap: Colormap = matplotlib.colormaps["tab10" if len(values) <= 10 else "tab20"]
        table = {value: cmap(i % cmap.N) for i, value in enumerate(values)}
    return (lambda value: table[value]), None


def number_the_best(axes: Axes, best: list[Curve], ylim: tuple[float, float], colour_of: Colour) -> None:
    """The rank of each best run at the end of its curve, moved apart where they would overlap (inside the axes)."""
    gap = 0.07 * (ylim[1] - ylim[0])
    low, high = ylim[0] + gap / 2, ylim[1] - gap / 2
    best = sorted(best, key=lambda c: c.values[-1])
    heights = [min(max(curve.values[-1], low), high) for curve in best]
    for i in range(1, len(heights)):  # up from the lowest, then down from the highest
        heights[i] = max(heights[i], heights[i - 1] + gap)
    for i in reversed(range(len(heights))):
        heights[i] = min(heights[i], high if i == len(heights) - 1 else heights[i + 1] - gap)
    for curve, y in zip(best, heights, strict=True):
        axes.annotate(str(curve.rank), (curve.epochs[-1], y), xytext=(5, 0), textcoords="offset points", va="center",
                      fontsize=9, fontweight="bold", color=colour_of(curve.colour_value), zorder=5,
                      bbox={"boxstyle": "round,pad=0.15", **BOX})  # fmt: skip


def say_what_is_off_the_axis(axes: Axes, curves: list[Curve], ylim: tuple[float, float], metric: str) -> None:
    """A note in the panel for the runs that did not learn and do not show: `4 at chance level: below (val/acc
    0.107-0.114)`, `1 failed: no validation`; in the corner they are beyond (bottom right for an accuracy, which the
    curves rise away from)."""
    said, sides = [], []
    for mark in sorted({curve.mark for curve in curves if curve.mark}):
        hidden = [c for c in curves if c.mark == mark and not any(ylim[0] <= v <= ylim[1] for v in c.values)]
        name = "at chance level" if mark == "chance" else mark
        values = [c.values[-1] for c in hidden if c.values]
        if values:
            low, high = f"{min(values):.3g}", f"{max(values):.3g}"
            sides.append("below" if np.median(values) < ylim[0] else "above")
            said.append(f"{len(values)} {name}: {sides[-1]} ({metric} {low if low == high else f'{low}-{high}'})")
        if len(values) < len(hidden):
            said.append(f"{len(hidden) - len(values)} {name}: no validation")
    if said:
        top = sides.count("above") > sides.count("below")
        axes.text(0.98, 0.97 if top else 0.03, "\n".join(said), transform=axes.transAxes, fontsize=7,
                  color="#555555", ha="right", va="top" if top else "bottom", zorder=6,
                  bbox={"boxstyle": "round,pad=0.2", **BOX})  # fmt: skip


def legend_handles(curves: list[Curve], encoding: Encoding, colour_of: Colour, styles: dict[str, str]) -> list[Line2D]:
    handles = []
    if not encoding.continuous:
        handles += [Line2D([], [], color=colour_of(value), linewidth=2, label=f"{encoding.colour_key}={short(value)}")
                    for value in encoding.colour_values]  # fmt: skip
    drawn = {curve.style for curve in curves if curve.epochs}
    if encoding.style_key and len(encoding.styles) <= len(LINE_STYLES):
        handles += [Line2D([], [], color="#444444", linestyle=styles[style], label=f"{encoding.style_key}={style}")
                    for style in encoding.styles if style in drawn]  # fmt: skip
    for curve in sorted((c for c in curves if c.rank), key=lambda c: c.rank):
        label = f"{curve.rank}: {curve.score:.4f}{' (mean)' if encoding.averaged else ''}\n{curve.label}"
        handles.append(Line2D([], [], color=colour_of(curve.colour_value), linewidth=2.6, marker="o", markersize=3.5,
                              linestyle=styles[curve.style], label=label))  # fmt: skip
    marks = sorted({curve.mark for curve in curves if curve.mark and curve.epochs})
    if marks:
        said = ", ".join("at chance level" if mark == "chance" else mark for mark in marks)
        handles.append(Line2D([], [], color=DIMMED, linewidth=0.8, label=f"did not learn\n({said})"))
    return handles


def title(curves: list[Curve], encoding: Encoding, metric: str, cut: int) -> str:
    parts = [f"colour: {encoding.colour_key}"]
    if encoding.style_key:
        parts.append(f"line style: {encoding.style_key}")
    best = sum(1 for curve in curves if curve.rank)
    one = "configuration" if encoding.averaged else "run"
    if best:
        parts.append(f"thick and numbered: the best {best}" if best > 1 else f"thick: the best {one}")
    panels = f", one panel per {encoding.panel_key}" if encoding.panel_key else ""
    axis = f"y-axis: the {one}s that learned" + (" (their far-off points cut)" if cut else "")
    drawn = f"{sum(1 for c in curves if c.epochs)} {one}s"
    if encoding.averaged:  # (a line of its own: the title must fit beside the legend of a one-panel figure)
        drawn += f"{panels}\neach: the {encoding.averaged}, band \u00b1 1 std"
        panels = ""
    return f"{metric} per epoch of {drawn}{panels}\n" + "; ".join(parts) + f"\n{axis}"


def mean_curve(members: list[Curve], label: str, higher_is_better: bool) -> Curve:
    """A configuration's curve from its runs' (`members`): per epoch, the mean of the runs that reached it, with a
    band of ± their std (ddof=1; none for one run), over the runs that learned (all of them when none did: it is
    marked as the first). Its score: the mean of the learned runs' best values."""
    learned = [curve for curve in members if not curve.mark]
    used = learned or members
    by_epoch: dict[float, list[float]] = {}
    for curve in used:
        for epoch, value in zip(curve.epochs, curve.values, strict=True):
            by_epoch.setdefault(epoch, []).append(value)
    epochs = sorted(by_epoch)
    means = [float(np.mean(by_epoch[epoch])) for epoch in epochs]
    stds = [float(np.std(by_epoch[epoch], ddof=1)) if len(by_epoch[epoch]) > 1 else 0.0 for epoch in epochs]
    scores = [curve.score for curve in used if not math.isnan(curve.score)]
    score = float(np.mean(scores)) if scores else math.nan
    if math.isnan(score) and means:
        score = max(means) if higher_is_better else min(means)
    banded = len(used) > 1
    return Curve(label, "", "", "", epochs, means, "" if learned else members[0].mark, score=score,
                 low=[m - s for m, s in zip(means, stds, strict=True)] if banded else [],
                 high=[m + s for m, s in zip(means, stds, strict=True)] if banded else [])  # fmt: skip


def grid_columns(panels: int) -> int:
    """Panels in a row: up to 3 side by side, 4 as 2 x 2, more in rows of 3 (or 4 from 10 panels on)."""
    if panels <= 3:
        return max(panels, 1)
    if panels == 4:
        return 2
    return 3 if panels <= 9 else 4


def numeric(values: list[str]) -> bool:
    return len(values) > 1 and all(is_number(value) for value in values)


def short(value: str) -> str:
    """A value as a label shows it: a long number (drawn by a search) to 3 significant digits (`0.00104`)."""
    return f"{float(value):.3g}" if len(value) > 6 and is_number(value) else value


def is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
