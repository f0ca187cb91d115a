"""torchvision's classification models as lists and sizes, without building one: the architectures and weights it
has (`check_arch_and_weights`, which the options' check calls), the weights enum member a name means (`pretrained`),
and an architecture's size (`torchvision_footprint`). Separate from `hyperlab.networks.pretrained` (which builds the
network) so that checking the options imports nothing of the network's module."""

import difflib
from collections.abc import Sequence

import torchvision
from torchvision.models import WeightsEnum, get_model_weights

from hyperlab.networks.footprint import DoesNotFit, Footprint
from hyperlab.options import OutOfRange


def architectures() -> list[str]:
    """torchvision's classification models, by the names `get_model` takes."""
    return list(torchvision.models.list_models(module=torchvision.models))


def weights_names(arch: str) -> list[str]:
    """The weights torchvision has for `arch`: DEFAULT and its enum's members (IMAGENET1K_V1, ...)."""
    return list(get_model_weights(arch).__members__)


def check_arch_and_weights(arch: str, weights: str | None) -> None:
    """Refuse an architecture torchvision does not have, or weights it does not have for it, naming the nearest
    (OutOfRange: the options' check says which key)."""
    known = architectures()
    if arch not in known:
        near = difflib.get_close_matches(arch, known, n=5, cutoff=0.5) or known[:10]
        raise OutOfRange("arch", arch, f"one of torchvision's {len(known)} classification models "
                         f"(torchvision.models.list_models()), the nearest: {near}")  # fmt: skip
    if weights is None:
        return
    names, enum = weights_names(arch), get_model_weights(arch).__name__
    if weights.removeprefix(f"{enum}.") not in names:
        raise OutOfRange("weights", weights, f"null (no pretrained weights) or one of {arch}'s: {names} "
                         f"(or {enum}.<name>)")  # fmt: skip


def pretrained(arch: str, weights: str | None) -> WeightsEnum | None:
    """The weights enum member `weights` names for `arch` (checked by `check_arch_and_weights`), None for none."""
    if weights is None:
        return None
    enum = get_model_weights(arch)
    return enum[weights.removeprefix(f"{enum.__name__}.")]


def torchvision_footprint(arch: str, weights: str | None, input_shape: Sequence[int]) -> Footprint:
    """What `arch` takes: its parameters as torchvision's weights describe them (`meta["num_params"]`; without
    weights, those of its default ones: the same architecture). Its activations are not counted (no formula per
    architecture; torchvision's classifiers train at 224x224 in a few GB)."""
    if len(input_shape) != 3 or input_shape[0] not in (1, 3):
        raise DoesNotFit(f"model=torchvision takes images of 1 (grey) or 3 (RGB) channels; this data's inputs have "
                         f"shape {list(input_shape)}")  # fmt: skip
    described = pretrained(arch, weights) or get_model_weights(arch).DEFAULT
    return Footprint(parameters=int(described.meta.get("num_params", 0)))
