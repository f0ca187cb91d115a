"""Session 2's challenge: a small convolutional network."""

import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from hyperlab.networks.layers import activation_layer, init_weights
from hyperlab.networks.options import CNNOptions, check_built


class CNN(nn.Module):
    """`len(channels)` x (conv [-> BatchNorm] -> activation -> 2x2 max-pool) -> flatten -> fc -> activation
    [-> Dropout] -> `head`. The course's CNN is channels=[32, 64], kernel_size=3, hidden=128.

    `channels_last` stores activations as NHWC, which oneDNN's CPU convolutions and tensor cores prefer.
    """

    options = CNNOptions  # its options and their ranges (hyperlab.networks.options)
    head_name = "head"  # the output layer, which a fine-tune replaces when the number of outputs differs

    def __init__(self, input_shape: Sequence[int], num_outputs: int, **options: Any) -> None:
        super().__init__()
        check_built(CNNOptions, options, input_shape, num_outputs)  # (its size, the images it takes: its footprint)
        chosen = CNNOptions(**options)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        channels_in, kernel_size = input_shape[0], chosen.kernel_size
        for i, channels_out in enumerate(chosen.channels, start=1):
            layers[f"conv{i}"] = nn.Conv2d(channels_in, channels_out, kernel_size, padding=kernel_size // 2)
            if chosen.batchnorm:
                layers[f"bn{i}"] = nn.BatchNorm2d(channels_out)
            layers[f"act{i}"] = activation_layer(chosen.activation)
            layers[f"pool{i}"] = nn.MaxPool2d(2)
            channels_in = channels_out
        self.features = nn.Sequential(layers)
        with torch.no_grad():
            flat = math.prod(self.features(torch.zeros(1, *input_shape)).shape)
        self.flatten = nn.Flatten()
        hidden_layers: OrderedDict[str, nn.Module] = OrderedDict(
            fc1=nn.Linear(flat, chosen.hidden), act1=activation_layer(chosen.activation)
        )
        if chosen.dropout > 0:
            hidden_layers["drop1"] = nn.Dropout(chosen.dropout)
        self.hidden = nn.Sequential(hidden_layers)
        self.head = nn.Linear(chosen.hidden, num_outputs)
        init_weights(self, chosen.init, chosen.activation)
        self.channels_last = chosen.channels_last
        if chosen.channels_last:
            self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.head(self.hidden(self.flatten(self.features(x))))
