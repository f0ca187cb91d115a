"""Transfer learning: any of torchvision's classification models (`model=torchvision model.arch=resnet18`), started
from its pretrained weights (`model.weights=DEFAULT`) or from scratch (`model.weights=null`).

The network is torchvision's own, built by its public API (`torchvision.models.get_model`), with its output layer
(the last `nn.Linear`: resnet's `fc`, vgg's `classifier.6`, vit's `heads.head`, ...) moved out and replaced by a new
one for the data's classes: `backbone` is torchvision's model without it, `head` the new layer, so that
`finetune.freeze=[net.backbone.*]` freezes everything but the head. It takes the data's images as they are (floats in
[0, 1], any size, grey or RGB) and brings them to what the weights were trained on itself (`Preprocess`: grey
repeated to three channels, resized, centre-cropped, normalised), so training, evaluation and hyperlab-predict all
see the weights' own preprocessing.

The weights file comes from torch's hub cache, `$TORCH_HOME/hub/checkpoints/<file>` (where torchvision downloads
it), and is read with `torch.load(..., weights_only=True)`: without it and without internet, the run is refused in
one line naming the file before anything trains. A network rebuilt from a hyperlab checkpoint (`from_checkpoint`)
reads no weights file: its weights are the checkpoint's.
"""

import contextlib
import os
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision.models import WeightsEnum, get_model
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F

from hyperlab.errors import ConfigError
from hyperlab.networks.options import (
    BUILT_FROM_CHECKPOINT,
    IMAGENET_MEAN,
    IMAGENET_STD,
    TorchvisionNetOptions,
    check_built,
)
from hyperlab.networks.options import from_checkpoint as from_checkpoint  # (where hyperlab's commands import it)
from hyperlab.networks.torchvision_models import pretrained

DOWNLOAD_TIMEOUT_S = 20  # per connection: offline, stop at once rather than hang


def cache_file(weights: WeightsEnum) -> Path:
    """Where torchvision keeps the weights' file: torch's hub cache (`$TORCH_HOME/hub/checkpoints/`)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def ensure_cached(weights: WeightsEnum, named: str) -> Path:
    """The weights' file in torch's hub cache, downloaded there by torch's own mechanism if it is missing (its hash
    checked); without internet, a ConfigError naming the file and the folder to copy it into."""
    file = cache_file(weights)
    if file.is_file():
        return file
    file.parent.mkdir(parents=True, exist_ok=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        match = torch.hub.HASH_REGEX.search(file.name)
        torch.hub.download_url_to_file(weights.url, str(file), match.group(1) if match else None, progress=False)
    except (OSError, RuntimeError) as error:  # (URLError and timeouts are OSErrors; a wrong hash a RuntimeError)
        reason = str(error).strip().splitlines()[-1][:120] if str(error).strip() else type(error).__name__
        raise ConfigError(f"model.weights={named} needs {file.name} in {file.parent}/ (downloading it failed: "
                          f"{reason}): copy it there, or model.weights=null") from None  # fmt: skip
    finally:
        socket.setdefaulttimeout(previous)
    return file


def read_plain(file: Path) -> dict[str, Any]:
    """A weights file as plain tensors (`weights_only=True`: a pickled object in it is refused, never run)."""
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - a truncated, foreign or pickled file fails in many ways
        reason = f"{type(error).__name__}: {str(error).splitlines()[0][:120] if str(error) else ''}"
        raise ConfigError(f"{file} is not a weights file torch can read as plain tensors ({reason}): delete it to "
                          "download it again") from None  # fmt: skip


@contextlib.contextmanager
def weights_from(file: Path | None) -> Iterator[None]:
    """torchvision's builders read their weights with `weights.get_state_dict()`, which unpickles without
    `weights_only`: while one builds, it reads `file` as plain tensors instead. `file=None`: the builder reads
    nothing and loads nothing (the architecture as those weights make it, e.g. vit's SWAG image size, googlenet
    without its auxiliary heads; a checkpoint's weights then replace the fresh ones)."""
    original_get, original_load = WeightsEnum.get_state_dict, nn.Module.load_state_dict
    WeightsEnum.get_state_dict = lambda self, *args, **kwargs: read_plain(file) if file else {}  # type: ignore[method-assign]
    if file is None:
        nn.Module.load_state_dict = lambda self, *args, **kwargs: None  # type: ignore[method-assign, assignment]
    try:
        yield
    finally:
        WeightsEnum.get_state_dict, nn.Module.load_state_dict = original_get, original_load  # type: ignore[method-assign]


def build_torchvision(arch: str, weights: WeightsEnum | None, named: str | None) -> nn.Module:
    """torchvision's `arch` built by torchvision, with `weights` read from torch's hub cache as plain tensors (or, for
    a checkpoint's network, as those weights shape it, its parameters freshly initialised)."""
    if weights is None:
        return get_model(arch, weights=None)
    file = None if BUILT_FROM_CHECKPOINT.get() else ensure_cached(weights, named or str(weights))
    try:
        with weights_from(file):
            return get_model(arch, weights=weights)
    except RuntimeError as error:  # load_state_dict: a file of another architecture under the expected name
        raise ConfigError(f"{file} does not hold {arch}'s weights ({str(error).splitlines()[0][:160]}): delete it to "
                          "download it again") from None  # fmt: skip


def split_head(model: nn.Module, arch: str) -> nn.Linear:
    """Take the model's output layer out (its last `nn.Linear`, replaced by an identity) and return it."""
    linears = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise ConfigError(f"model.arch={arch}: its output layer is not a Linear layer (squeezenet's is a convolution):"
                          " hyperlab replaces the last Linear layer with one for the data's classes")  # fmt: skip
    parent_name, _, name = linears[-1].rpartition(".")
    parent = model.get_submodule(parent_name)
    head = getattr(parent, name)
    setattr(parent, name, nn.Identity())
    return head


class Preprocess(nn.Module):
    """What the weights' own transforms (`weights.transforms()`) do to an image, done to a batch of floats in [0, 1]
    on its device: grey repeated to three channels, resized (its shorter side to `resize_size`), centre-cropped to
    `crop_size`, normalised by `mean` and `std`. No size: the images' own."""

    def __init__(
        self,
        resize_size: list[int] | None,
        crop_size: list[int] | None,
        mean: Sequence[float],
        std: Sequence[float],
        interpolation: InterpolationMode = InterpolationMode.BILINEAR,
    ) -> None:
        super().__init__()
        self.resize_size, self.crop_size, self.interpolation = resize_size, crop_size, interpolation
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:  # grey (MNIST-like): the same values in the three channels the weights expect
            x = x.expand(-1, 3, -1, -1)
        if self.resize_size:
            x = F.resize(x, self.resize_size, interpolation=self.interpolation, antialias=True)
        if self.crop_size:
            x = F.center_crop(x, self.crop_size)
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"resize_size={self.resize_size}, crop_size={self.crop_size}"


def preprocessing(weights: WeightsEnum | None, resize: int | None) -> Preprocess:
    """The weights' own preprocessing (`weights.transforms()`: its resize, crop, mean and std); `resize` instead of
    their size (a square, no crop); without weights, ImageNet's mean and std at the images' own size or `resize`."""
    if weights is None:
        return Preprocess([resize, resize] if resize else None, None, IMAGENET_MEAN, IMAGENET_STD)
    transforms = weights.transforms()
    mean, std = getattr(transforms, "mean", IMAGENET_MEAN), getattr(transforms, "std", IMAGENET_STD)
    interpolation = getattr(transforms, "interpolation", InterpolationMode.BILINEAR)
    if resize:
        return Preprocess([resize, resize], None, mean, std, interpolation)
    return Preprocess(list(transforms.resize_size), list(transforms.crop_size), mean, std, interpolation)


class TorchvisionNet(nn.Module):
    """`preprocess` (the weights' transforms) -> `backbone` (torchvision's `arch` without its output layer) ->
    `head` (a new Linear layer for the data's classes)."""

    options = TorchvisionNetOptions  # its options and their ranges (hyperlab.networks.options)
    head_name = "head"  # the output layer, which a fine-tune replaces when the number of outputs differs

    def __init__(self, input_shape: Sequence[int], num_outputs: int, **options: Any) -> None:
        super().__init__()
        check_built(TorchvisionNetOptions, options, input_shape, num_outputs)  # (its size: torchvision_footprint)
        chosen = TorchvisionNetOptions(**options)
        weights = pretrained(chosen.arch, chosen.weights)
        self.preprocess = preprocessing(weights, chosen.resize)
        self.backbone = build_torchvision(chosen.arch, weights, chosen.weights)
        old_head = split_head(self.backbone, chosen.arch)
        self.head = nn.Linear(old_head.in_features, num_outputs)
        if weights is None and not chosen.resize:
            check_takes_size(self, chosen.arch, input_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(self.preprocess(x))
        if isinstance(features, tuple):  # googlenet / inception_v3 built without weights: (logits, aux logits)
            features = features[0]
        return self.head(features)


def check_takes_size(network: TorchvisionNet, arch: str, input_shape: Sequence[int]) -> None:
    """Refuse images the architecture can't take at their own size (a ViT's fixed 224, inception's at least 75)."""
    was_training = network.training
    try:
        with torch.no_grad():
            network.eval()(torch.zeros(1, *input_shape))
    except (RuntimeError, ValueError, AssertionError) as error:
        size = "x".join(str(n) for n in input_shape[1:])
        raise ConfigError(f"model.arch={arch} does not take {size} images ({str(error).splitlines()[0][:100]}): give "
                          "model.resize=224 (the size of its pretrained weights' images)") from None  # fmt: skip
    finally:
        network.train(was_training)
