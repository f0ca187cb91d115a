"""Session 2's challenge: a small convolutional network."""

import math
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from hyperlab.networks.layers import ACTIVATIONS, check_shared_options, init_weights
from hyperlab.options import Options


class CNN(nn.Module):
    """`len(channels)` x (conv [-> BatchNorm] -> activation -> 2x2 max-pool) -> flatten -> fc -> activation
    [-> Dropout] -> `head`. The course's CNN is channels=[32, 64], kernel_size=3, hidden=128.

    `channels_last` stores activations as NHWC, which oneDNN's CPU convolutions and tensor cores prefer.
    """

    head_name = "head"  # the output layer, which a fine-tune replaces when the number of outputs differs

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        channels: Sequence[int],
        kernel_size: int,
        hidden: int,
        dropout: float,
        activation: str,
        batchnorm: bool,
        init: str,
        channels_last: bool,
    ) -> None:
        super().__init__()
        if len(input_shape) != 3:
            shape = list(input_shape)
            raise ValueError(f"the CNN takes images (channels, height, width); this data's inputs have shape {shape}")
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        channels_in = input_shape[0]
        for i, channels_out in enumerate(channels, start=1):
            layers[f"conv{i}"] = nn.Conv2d(channels_in, channels_out, kernel_size, padding=kernel_size // 2)
            if batchnorm:
                layers[f"bn{i}"] = nn.BatchNorm2d(channels_out)
            layers[f"act{i}"] = ACTIVATIONS[activation]()
            layers[f"pool{i}"] = nn.MaxPool2d(2)
            channels_in = channels_out
        self.features = nn.Sequential(layers)
        with torch.no_grad():
            flat = math.prod(self.features(torch.zeros(1, *input_shape)).shape)
        self.flatten = nn.Flatten()
        hidden_layers: OrderedDict[str, nn.Module] = OrderedDict(
            fc1=nn.Linear(flat, hidden), act1=ACTIVATIONS[activation]()
        )
        if dropout > 0:
            hidden_layers["drop1"] = nn.Dropout(dropout)
        self.hidden = nn.Sequential(hidden_layers)
        self.head = nn.Linear(hidden, num_outputs)
        init_weights(self, init, activation)
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)

    @staticmethod
    def check_options(options: Options) -> None:
        check_shared_options(options)
        channels = options.channels
        options.require("channels", len(channels) >= 1 and min(channels) >= 1, "a list of integers >= 1")
        odd = options.kernel_size >= 1 and options.kernel_size % 2 == 1
        options.require("kernel_size", odd, "an odd integer >= 1")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.head(self.hidden(self.flatten(self.features(x))))
