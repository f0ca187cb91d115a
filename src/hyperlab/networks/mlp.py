"""The fully connected network of sessions 1 and 2, with every knob the homework sweeps."""

import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from hyperlab.networks.layers import activation_layer, init_weights
from hyperlab.networks.options import MLPOptions, check_built, hidden_widths


class MLP(nn.Module):
    """Flatten -> `depth` x (Linear [-> BatchNorm] -> activation [-> Dropout]) -> Linear head.

    depth=0 is a linear model. Layers are named as in the course (`hidden.fc1`, `hidden.act1`, ...) and the
    output layer is `head`, so parameter names are readable when freezing or replacing them.
    """

    options = MLPOptions  # its options and their ranges (hyperlab.networks.options)
    head_name = "head"  # the output layer, which a fine-tune replaces when the number of outputs differs

    def __init__(self, input_shape: Sequence[int], num_outputs: int, **options: Any) -> None:
        super().__init__()
        check_built(MLPOptions, options, input_shape, num_outputs)  # (its size: MLPOptions.footprint)
        chosen = MLPOptions(**options)
        self.flatten = nn.Flatten()
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        width_in = math.prod(input_shape)
        for i, width in enumerate(hidden_widths(chosen.hidden, chosen.depth, chosen.taper), start=1):
            layers[f"fc{i}"] = nn.Linear(width_in, width)
            if chosen.batchnorm:
                layers[f"bn{i}"] = nn.BatchNorm1d(width)
            layers[f"act{i}"] = activation_layer(chosen.activation)
            if chosen.dropout > 0:
                layers[f"drop{i}"] = nn.Dropout(chosen.dropout)
            width_in = width
        self.hidden = nn.Sequential(layers)
        self.head = nn.Linear(width_in, num_outputs)
        init_weights(self, chosen.init, chosen.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(self.flatten(x)))
