"""Plain `nn.Module`s. Each takes `input_shape` and `num_outputs` (filled in from the data) plus its own knobs."""

from hyperlab.networks.cnn import CNN
from hyperlab.networks.line import LineModel
from hyperlab.networks.mlp import MLP

__all__ = ["CNN", "MLP", "LineModel"]
