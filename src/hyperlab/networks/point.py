"""The optimizer playground's model: a point whose coordinates are its parameters, so that the optimizer moves the
point itself on the function the task minimises (hyperlab.tasks.minimisation)."""

from collections.abc import Sequence

import torch
from torch import nn

from hyperlab.data.functions import COORDINATES
from hyperlab.networks.options import PointOptions, check_built


class Point(nn.Module):
    """`num_outputs` coordinates (1: x; 2: x and y), each a parameter of its own, so that they are logged and
    checkpointed by name. The output is the point, once per input row (the input's values are not used)."""

    options = PointOptions  # none (hyperlab.networks.options)
    head_name = None  # no output layer: a fine-tune keeps the point

    def __init__(self, input_shape: Sequence[int], num_outputs: int) -> None:
        super().__init__()
        check_built(PointOptions, {}, input_shape, num_outputs)  # (1 or 2 coordinates: its footprint)
        for name in COORDINATES[:num_outputs]:
            self.register_parameter(name, nn.Parameter(torch.zeros(())))

    def coordinates(self) -> torch.Tensor:
        """The point, a vector of its coordinates."""
        return torch.stack([parameter for _, parameter in self.named_parameters()])

    @torch.no_grad()
    def move_to(self, point: Sequence[float]) -> None:
        for parameter, value in zip(self.parameters(), point, strict=True):
            parameter.fill_(value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.coordinates().expand(len(x), -1)
