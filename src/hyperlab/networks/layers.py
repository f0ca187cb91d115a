"""The building blocks the networks share: activations by name and weight initialisation schemes (their names:
hyperlab.networks.options)."""

from torch import nn

from hyperlab.networks.options import ACTIVATIONS, INITS


def activation_layer(name: str) -> nn.Module:
    """The activation `name` (one of ACTIVATIONS) as a layer."""
    return getattr(nn, ACTIVATIONS[name])()


def init_weights(network: nn.Module, scheme: str, activation: str) -> None:
    """Re-initialise every linear and convolutional layer of `network` in place; biases start at zero."""
    if scheme == "default":
        return
    if scheme not in INITS:
        raise ValueError(f"init={scheme!r} is not one of {list(INITS)}")
    gain_name = "leaky_relu" if activation == "leaky_relu" else activation
    for layer in network.modules():
        if not isinstance(layer, (nn.Linear, nn.Conv2d)):
            continue
        if scheme == "uniform":
            nn.init.uniform_(layer.weight, -0.05, 0.05)
        elif scheme == "normal":
            nn.init.normal_(layer.weight, std=0.05)
        elif scheme == "xavier":
            nn.init.xavier_uniform_(layer.weight, gain=nn.init.calculate_gain(gain_name))
        else:  # kaiming
            nn.init.kaiming_normal_(layer.weight, nonlinearity=gain_name)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
