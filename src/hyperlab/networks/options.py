"""The options of hyperlab's networks, declared once, here, without torch: the config's check reads them before
torch is imported (hyperlab.options.declared_options), and each network builds itself from them
(`MLP(input_shape, num_outputs, **options)`). conf/model/<network>.yaml holds their values, a comment on each."""

from collections.abc import Sequence
from dataclasses import dataclass

from hyperlab.options import Options

# an activation by name: the torch.nn class that computes it
ACTIVATIONS = {"relu": "ReLU", "leaky_relu": "LeakyReLU", "tanh": "Tanh", "sigmoid": "Sigmoid"}

# "default" keeps PyTorch's own initialisation (uniform in +-1/sqrt(fan_in)); "uniform" and "normal" are the
# naive fixed-scale schemes (as Keras' RandomUniform/RandomNormal) that show why scaling by fan-in matters.
INITS = ("default", "uniform", "normal", "xavier", "kaiming")


def check_shared_options(options: Options) -> None:
    """The ranges of the knobs the MLP and the CNN share."""
    options.require("hidden", options.hidden >= 1, "an integer >= 1")
    options.require("dropout", 0 <= options.dropout < 1, "a probability in [0, 1)")
    options.require("activation", options.activation in ACTIVATIONS, f"one of {list(ACTIVATIONS)}")
    options.require("init", options.init in INITS, f"one of {list(INITS)}")


@dataclass(frozen=True, kw_only=True)
class MLPOptions:
    """hyperlab.networks.MLP's."""

    hidden: int
    depth: int
    taper: float
    dropout: float
    activation: str
    batchnorm: bool
    init: str

    @staticmethod
    def check_options(options: Options) -> None:
        check_shared_options(options)
        options.require("depth", options.depth >= 0, "an integer >= 0 (0 = a linear model)")
        options.require("taper", 0 < options.taper <= 4, "a number in (0, 4]")


@dataclass(frozen=True, kw_only=True)
class CNNOptions:
    """hyperlab.networks.CNN's."""

    channels: Sequence[int]
    kernel_size: int
    hidden: int
    dropout: float
    activation: str
    batchnorm: bool
    init: str
    channels_last: bool

    @staticmethod
    def check_options(options: Options) -> None:
        check_shared_options(options)
        channels = options.channels
        options.require("channels", len(channels) >= 1 and min(channels) >= 1, "a list of integers >= 1")
        odd = options.kernel_size >= 1 and options.kernel_size % 2 == 1
        options.require("kernel_size", odd, "an odd integer >= 1")


@dataclass(frozen=True, kw_only=True)
class LineModelOptions:
    """hyperlab.networks.LineModel's: none (a gradient and an intercept, nothing to choose)."""
