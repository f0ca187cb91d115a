"""The options of hyperlab's networks, declared once, here, without torch: the config's check reads them before
torch is imported (hyperlab.options.declared_options), and each network builds itself from them
(`MLP(input_shape, num_outputs, **options)`). conf/model/<network>.yaml holds their values, a comment on each.

Each network's options also say how large it is on given inputs (their `footprint`), and whether it fits them at all;
hyperlab.networks.footprint's `check_network` refuses a network that does not fit the data or this machine's memory,
before anything is allocated: the config's check on the smallest inputs it could take (before torch is imported,
`smallest_input`), each network's constructor on the data's own (`check_built`), a checkpoint's check on the inputs
it stores."""

import contextlib
import math
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar

from hyperlab.data.functions import COORDINATES
from hyperlab.networks.footprint import DoesNotFit, Footprint, check_network, past_limit
from hyperlab.options import Options

# an activation by name: the torch.nn class that computes it
ACTIVATIONS = {"relu": "ReLU", "leaky_relu": "LeakyReLU", "tanh": "Tanh", "sigmoid": "Sigmoid"}

# "default" keeps PyTorch's own initialisation (uniform in +-1/sqrt(fan_in)); "uniform" and "normal" are the
# naive fixed-scale schemes (as Keras' RandomUniform/RandomNormal) that show why scaling by fan-in matters.
INITS = ("default", "uniform", "normal", "xavier", "kaiming")

# model=torchvision without pretrained weights normalises its inputs as ImageNet's weights do (their mean and std)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
RESIZE_RANGE = (8, 1024)  # model.resize: the image sizes allowed, pixels a side

# whether the network being built is a checkpoint's (its weights come from the file): no pretrained weights file is
# read (hyperlab.networks.pretrained), and a refusal names the file's key, `network.<key>`, not the config's `model.`
BUILT_FROM_CHECKPOINT: ContextVar[bool] = ContextVar("built_from_checkpoint", default=False)


@contextlib.contextmanager
def from_checkpoint() -> Iterator[None]:
    """Build networks whose weights a checkpoint then gives."""
    token = BUILT_FROM_CHECKPOINT.set(True)
    try:
        yield
    finally:
        BUILT_FROM_CHECKPOINT.reset(token)


def check_built(declared: Any, options: dict[str, Any], input_shape: Sequence[int], num_outputs: int) -> None:
    """A network's constructor, before it allocates anything: its options on the data's inputs, one sample a batch
    (the batch size is the data's: the config's check counts it)."""
    where = "network" if BUILT_FROM_CHECKPOINT.get() else "model"
    check_network(declared, options, list(input_shape), num_outputs, 1, where)


def check_shared_options(options: Options) -> None:
    """The ranges of the knobs the MLP and the CNN share."""
    options.require("hidden", options.hidden >= 1, "an integer >= 1")
    options.require("dropout", 0 <= options.dropout < 1, "a probability in [0, 1)")
    options.require("activation", options.activation in ACTIVATIONS, f"one of {list(ACTIVATIONS)}")
    options.require("init", options.init in INITS, f"one of {list(INITS)}")


def hidden_widths(hidden: int, depth: int, taper: float) -> list[int]:
    """Widths of an MLP's hidden layers: the first is `hidden`, each next one `taper` times the one before."""
    return list(tapered(hidden, depth, taper))


def tapered(hidden: int, depth: int, taper: float) -> Iterator[int]:
    """`hidden_widths` one at a time (a footprint stops early: a width past the limit)."""
    for i in range(depth):
        yield hidden if taper == 1 else max(1, round(hidden * taper**i))


def width_runs(hidden: int, depth: int, taper: float) -> Iterator[tuple[int, int]]:
    """`hidden_widths` as runs of equal widths, (width, layers), without walking a run that stays the same: all the
    layers when taper is 1, those from the first of width 1 on when it is below (they stay 1)."""
    if taper == 1:
        yield from [(hidden, depth)] if depth else []
        return
    for i, width in enumerate(tapered(hidden, depth, taper)):
        if width == 1 and taper < 1:
            yield 1, depth - i
            return
        yield width, 1


def one_feature(options: Options) -> list[int]:
    """The smallest input of a network that takes any vector of features (a network's `smallest_input`)."""
    return [1]


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

    SMALLEST: ClassVar[dict[str, Any]] = {"hidden": 1, "depth": 0, "taper": 1.0}  # (the options that size it)

    @staticmethod
    def check_options(options: Options) -> None:
        check_shared_options(options)
        options.require("depth", options.depth >= 0, "an integer >= 0 (0 = a linear model)")
        options.require("taper", 0 < options.taper <= 4, "a number in (0, 4]")

    smallest_input = staticmethod(one_feature)

    @staticmethod
    def footprint(options: Options, input_shape: list[int], num_outputs: int) -> Footprint:
        """Flatten -> each hidden layer (its linear, batch norm, activation and dropout outputs kept) -> head."""
        width_in, kept = math.prod(input_shape), 2 + options.batchnorm + (options.dropout > 0)
        # (at least 2 parameters and activations a layer: a billion layers is too many before any is counted, as is a
        # width too large to compute its tapering with)
        least = Footprint(2 * options.depth, width_in + 2 * options.depth + options.hidden, options.depth)
        if past_limit(least):
            return least
        total = Footprint(activations=width_in)
        for width, layers in width_runs(options.hidden, options.depth, options.taper):
            norm = 2 * width if options.batchnorm else 0
            parameters = width_in * width + width + (layers - 1) * (width * width + width) + layers * norm
            total += Footprint(parameters, kept * width * layers, layers)
            if past_limit(total):
                return total
            width_in = width
        return total + Footprint(width_in * num_outputs + num_outputs, num_outputs, 1)


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

    SMALLEST: ClassVar[dict[str, Any]] = {"hidden": 1, "kernel_size": 1, "channels": 1}  # (channels: each)

    @staticmethod
    def check_options(options: Options) -> None:
        check_shared_options(options)
        channels = options.channels
        options.require("channels", len(channels) >= 1 and min(channels) >= 1, "a list of integers >= 1")
        odd = options.kernel_size >= 1 and options.kernel_size % 2 == 1
        options.require("kernel_size", odd, "an odd integer >= 1")

    @staticmethod
    def smallest_input(options: Options) -> list[int]:
        """One channel, as few pixels as its blocks halve and its kernel reads (`footprint`)."""
        side = max(2 ** len(options.channels), (options.kernel_size + 1) // 2)
        return [1, side, side]

    @staticmethod
    def footprint(options: Options, input_shape: list[int], num_outputs: int) -> Footprint:
        """Each block (its convolution, batch norm and activation outputs, the pooled one) -> fc -> head. It takes
        images whose sides its 2x2 max-pools can halve once per block, and a kernel at most twice as wide (wider, it
        reads only the zero padding around them)."""
        if len(input_shape) != 3:
            raise DoesNotFit(f"the CNN takes images (channels, height, width); this data's inputs have shape "
                             f"{list(input_shape)} (use model=mlp)")  # fmt: skip
        channels_in, height, width = input_shape
        side, blocks = min(height, width), len(options.channels)
        most = side.bit_length() - 1
        options.require("channels", blocks <= most, f"at most {most} blocks for images of {height}x{width} (each "
                        "block halves them with a 2x2 max-pool)")  # fmt: skip
        widest = 2 * side - 1
        options.require("kernel_size", options.kernel_size <= widest, f"an odd integer up to {widest} for images of "
                        f"{height}x{width} (a wider kernel reads only the zero padding around them)")  # fmt: skip
        total = Footprint(activations=channels_in * height * width)
        area, square = height * width, options.kernel_size**2
        kept = 2 + options.batchnorm
        for channels_out in options.channels:
            norm = 2 * channels_out if options.batchnorm else 0
            height, width = height // 2, width // 2
            activations = kept * channels_out * area + channels_out * height * width
            total += Footprint(channels_in * channels_out * square + channels_out + norm, activations, 1)
            if past_limit(total):
                return total
            channels_in, area = channels_out, height * width
        flat, hidden = channels_in * area, options.hidden
        total += Footprint(flat * hidden + hidden, (2 + (options.dropout > 0)) * hidden, 1)
        return total + Footprint(hidden * num_outputs + num_outputs, num_outputs, 1)


@dataclass(frozen=True, kw_only=True)
class LineModelOptions:
    """hyperlab.networks.LineModel's: none (a gradient and an intercept, nothing to choose)."""

    smallest_input = staticmethod(one_feature)

    @staticmethod
    def footprint(options: Options, input_shape: list[int], num_outputs: int) -> Footprint:
        if list(input_shape) != [1] or num_outputs != 1:
            raise DoesNotFit(f"the line model maps one input feature to one output; this data has input shape "
                             f"{list(input_shape)} and {num_outputs} output(s) (use model=mlp)")  # fmt: skip
        return Footprint(parameters=2, activations=1, layers=1)


@dataclass(frozen=True, kw_only=True)
class PointOptions:
    """hyperlab.networks.Point's: none (its coordinates are the parameters; the data says where it starts)."""

    smallest_input = staticmethod(one_feature)

    @staticmethod
    def footprint(options: Options, input_shape: list[int], num_outputs: int) -> Footprint:
        if not 1 <= num_outputs <= len(COORDINATES):
            raise DoesNotFit(f"a point has 1 or 2 coordinates; this data asks for {num_outputs} (use data=playground)")
        return Footprint(parameters=num_outputs, activations=num_outputs, layers=1)


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
        from hyperlab.networks.torchvision_models import check_arch_and_weights  # (torchvision's lists: imports torch)

        check_arch_and_weights(options.arch, options.weights)

    @staticmethod
    def smallest_input(options: Options) -> list[int]:
        return [3, RESIZE_RANGE[0], RESIZE_RANGE[0]]

    @staticmethod
    def footprint(options: Options, input_shape: list[int], num_outputs: int) -> Footprint:
        from hyperlab.networks.torchvision_models import torchvision_footprint  # (torchvision's weights: imports torch)

        return torchvision_footprint(options.arch, options.weights, input_shape)


def starts_pretrained(model: Any) -> bool:
    """Whether a model's config loads pretrained weights of its own (model=torchvision with model.weights set): a
    fine-tune that needs no checkpoint (hyperlab.callbacks.finetuning.pretrained_finetune)."""
    return model.get("_target_") == "hyperlab.networks.TorchvisionNet" and model.get("weights") is not None
