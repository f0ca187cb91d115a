"""A sweep's `curves.png`: the validation metric per epoch of every run on one figure, coloured by the first swept
key (the course's learning-rate comparison plot), with a line style per value of the second."""

from dataclasses import dataclass

import matplotlib
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

LINE_STYLES = ("-", "--", ":", "-.")


@dataclass
class Curve:
    """One run's curve: its values of the first two swept keys ("" when there is no second) and its points."""

    colour_value: str
    style_value: str
    epochs: list[float]
    values: list[float]


def curves_figure(curves: list[Curve], colour_values: list[str], style_values: list[str], colour_key: str,
                  style_key: str, metric: str) -> Figure:  # fmt: skip
    """Ordered values (numbers: low to high) take a sequential colour map, others a qualitative one; more than four
    values of the second key are all drawn solid."""
    cmap = matplotlib.colormaps["viridis" if numeric(colour_values) else "tab10"]
    colours = {value: cmap(i / max(len(colour_values) - 1, 1) if numeric(colour_values) else i % 10)
               for i, value in enumerate(colour_values)}  # fmt: skip
    styles = {value: LINE_STYLES[i] if len(style_values) <= len(LINE_STYLES) else "-"
              for i, value in enumerate(style_values)}  # fmt: skip
    figure = Figure(figsize=(8, 5), layout="constrained")
    axes = figure.add_subplot()
    for curve in curves:
        axes.plot(curve.epochs, curve.values, color=colours[curve.colour_value], linestyle=styles[curve.style_value],
                  marker="o" if len(curve.epochs) < 20 else None, markersize=3, alpha=0.85)  # fmt: skip
    handles = [Line2D([], [], color=colours[value], label=f"{colour_key}={value}") for value in colour_values]
    if style_key and len(style_values) <= len(LINE_STYLES):
        handles += [Line2D([], [], color="grey", linestyle=styles[value], label=f"{style_key}={value}")
                    for value in style_values]  # fmt: skip
    axes.legend(handles=handles, fontsize=8, loc="best")
    axes.set(xlabel="epoch", ylabel=metric, title=f"{metric} per epoch, by {colour_key}")
    axes.grid(alpha=0.3)
    return figure


def numeric(values: list[str]) -> bool:
    try:
        [float(value) for value in values]
    except ValueError:
        return False
    return len(values) > 1
