"""The optimizer playground's "data": a function of one or two parameters to minimise (hyperlab.data.functions),
not samples. The point network ignores its rows: a training row is one optimizer step on the function, and an epoch
has more of them (MAX_STEPS) than a run takes, so that `trainer.max_steps` ends it and a run is one epoch, validated
once, at its end (conf/experiment/optimizer_playground.yaml: Lightning's per-epoch work, about 30 ms, is paid once
rather than per step). Validation and test are one row: the loss at the point."""

from typing import Any

import torch

from hyperlab.data.base import Split, TensorDataModule
from hyperlab.data.functions import COORDINATES, FUNCTIONS, Landscape
from hyperlab.data.options import PlaygroundDataModuleOptions

MAX_STEPS = 100_000  # training rows: the most steps one epoch takes (trainer.max_steps at most this)


class PlaygroundDataModule(TensorDataModule):
    """`function` (a name of hyperlab.data.functions.FUNCTIONS), started at `start` (null: the function's own)."""

    kind = "minimisation"
    reference_label = "the global minimum"
    options = PlaygroundDataModuleOptions  # (its fixed_options: one row a step)

    def __init__(self, **options: Any) -> None:
        super().__init__(**self.options.fixed_options, **options)

    @property
    def landscape(self) -> Landscape:
        return FUNCTIONS[self.function]

    @property
    def start_point(self) -> list[float]:
        """Where the optimizer starts: `start`, or the function's own start."""
        return [float(value) for value in (self.start or self.landscape.start)]

    def load(self) -> dict[str, Split]:
        row = (torch.zeros(1, 1), torch.zeros(1, 1))
        return {"train": (torch.zeros(MAX_STEPS, 1), torch.zeros(MAX_STEPS, 1)), "val": row, "test": row}

    def reference_parameters(self) -> dict[str, float]:
        """The (first) global minimum, named as the point network names its coordinates."""
        return dict(zip(COORDINATES, self.landscape.minima[0], strict=False))
