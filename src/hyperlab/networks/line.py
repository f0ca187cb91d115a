"""Session 1's model: a straight line with exactly two learnable numbers."""

from collections.abc import Sequence

import torch
from torch import nn

from hyperlab.networks.options import LineModelOptions, check_built


class LineModel(nn.Module):
    """y = gradient * x + intercept, both parameters drawn from N(0, 1) as in the course's demo."""

    options = LineModelOptions  # none (hyperlab.networks.options)
    head_name = None  # no separate output layer: a fine-tune keeps both numbers

    def __init__(self, input_shape: Sequence[int], num_outputs: int) -> None:
        super().__init__()
        check_built(LineModelOptions, {}, input_shape, num_outputs)  # (one feature in, one out: its footprint)
        self.gradient = nn.Parameter(torch.randn(1))
        self.intercept = nn.Parameter(torch.randn(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gradient * x + self.intercept
