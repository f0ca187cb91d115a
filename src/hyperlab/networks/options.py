"""The options of hyperlab's networks, declared once, here, without torch: the config's check reads them before
torch is imported (hyperlab.options.declared_options), and each network builds itself from them
(`MLP(input_shape, num_outputs, **options)`). conf/model/<network>.yaml holds their values, a comment on each."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hyperlab.options import Options

# an activation by name: the torch.nn class that computes it
ACTIVATIONS = {"relu": "ReLU", "leaky_relu": "LeakyReLU", "tanh": "Tanh", "sigmoid": "Sigmoid"}

# "default" keeps PyTorch's own initialisation (uniform in +-1/sqrt(fan_in)); "uniform" and "normal" are the
# naive fixed-scale schemes (as Keras' RandomUniform/RandomNormal) that show why scaling by fan-in matters.
INITS = ("default", "uniform", "normal", "xavier", "kaiming")

# model=torchvision without pretrained weights normalises its inputs as ImageNet's weights do (their mean and std)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
RESIZE_RANGE = (8, 1024)  # model.resize: the image sizes allowed, pixels a side


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


@dataclass(frozen=True, kw_only=True)
class PointOptions:
    """hyperlab.networks.Point's: none (its coordinates are the parameters; the data says where it starts)."""


@dataclass(frozen=True, kw_only=True)
class TorchvisionNetOptions:
    """hyperlab.networks.TorchvisionNet's: torchvision's architecture, its pretrained weights, the images' size."""

    arch: str
    weights: str | None
    resize: int | None = None

    @staticmethod
    def check_options(options: Options) -> None:
        low, high = RESIZE_RANGE
        fits = options.resize is None or low <= options.resize <= high
        options.require("resize", fits, f"null (the weights' own size) or an integer in [{low}, {high}]")
        from hyperlab.networks.pretrained import check_arch_and_weights  # (torchvision's lists: imports torch)

        check_arch_and_weights(options.arch, options.weights)


def starts_pretrained(model: Any) -> bool:
    """Whether a model's config loads pretrained weights of its own (model=torchvision with model.weights set): a
    fine-tune that needs no checkpoint (hyperlab.callbacks.finetuning.pretrained_finetune)."""
    return model.get("_target_") == "hyperlab.networks.TorchvisionNet" and model.get("weights") is not None
