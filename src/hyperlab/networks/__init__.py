"""Plain `nn.Module`s. Each takes `input_shape` and `num_outputs` (filled in from the data) plus its own knobs,
declared in hyperlab.networks.options.

Importing this package imports no torch: a network's module is imported when the network is first used
(`hyperlab.networks.MLP`, as conf/model/ names it), so that the config's check reads the options first."""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hyperlab.networks.cnn import CNN
    from hyperlab.networks.line import LineModel
    from hyperlab.networks.mlp import MLP
    from hyperlab.networks.point import Point
    from hyperlab.networks.pretrained import TorchvisionNet

MODULES = {  # each network, by the module that defines it
    "CNN": "cnn",
    "MLP": "mlp",
    "LineModel": "line",
    "Point": "point",
    "TorchvisionNet": "pretrained",
}


def __getattr__(name: str) -> Any:
    if name in MODULES:
        return getattr(importlib.import_module(f"{__name__}.{MODULES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CNN", "MLP", "LineModel", "Point", "TorchvisionNet"]
