"""The functions the optimizer playground minimises (`data=playground data.function=<name>`), declared once, here,
without torch: the config's check reads their names before torch is imported, and the run's and the sweep's figures
draw them with numpy. Each formula is written with arithmetic operators only, so that the same code takes torch
tensors (the loss the optimizer descends) and numpy arrays (the contours).

The course's function is the one of its exercise (intro course, "Experimenting with learning rate" and "with
momentum": `optimize_and_plot`): f(x) = x^4 + x^3 - 5x^2, one parameter, started at x = 2. Its stationary points are
x = -2 (the global minimum, f = -12), x = 0 (a local maximum) and x = 5/4 (a local minimum, f = -3.418): from x = 2
a small step size settles in the local minimum on the right, a large one jumps over the hump at 0.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def course(x: Any) -> Any:
    return x**4 + x**3 - 5 * x**2


def rosenbrock(x: Any, y: Any) -> Any:
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def himmelblau(x: Any, y: Any) -> Any:
    return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2


@dataclass(frozen=True)
class Landscape:
    """A function to minimise, where the playground starts on it, where its global minima are and what its figures
    show (`view`: the lower and upper corner of the region drawn)."""

    formula: Callable[..., Any]
    text: str  # the formula as a figure's title writes it
    start: tuple[float, ...]
    minima: tuple[tuple[float, ...], ...]  # the global minima (the distance to the minimum: to the nearest)
    view: tuple[tuple[float, ...], tuple[float, ...]]

    @property
    def dims(self) -> int:
        """Its parameters: 1 (x) or 2 (x, y)."""
        return len(self.start)

    @property
    def lowest(self) -> float:
        """Its value at the global minimum: the loss is the height above it (0 there)."""
        return float(self.formula(*self.minima[0]))

    def height(self, *coordinates: Any) -> Any:
        """f(point) - f(minimum): what the playground's loss is, 0 at the minimum."""
        return self.formula(*coordinates) - self.lowest


FUNCTIONS = {
    "course": Landscape(course, "x^4 + x^3 - 5x^2", (2.0,), ((-2.0,),), ((-3.0,), (2.5,))),
    "rosenbrock": Landscape(
        rosenbrock, "(1 - x)^2 + 100 (y - x^2)^2", (-1.2, 1.0), ((1.0, 1.0),), ((-2.0, -1.0), (2.0, 3.0))
    ),
    "himmelblau": Landscape(
        himmelblau,
        "(x^2 + y - 11)^2 + (x + y^2 - 7)^2",
        (0.0, 0.0),
        ((3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126)),
        ((-5.0, -5.0), (5.0, 5.0)),
    ),
}
COORDINATES = ("x", "y")  # the names of a point's coordinates (the network's parameters, params/x in the metrics)
