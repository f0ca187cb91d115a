"""The building blocks the networks share: activations by name and weight initialisation schemes."""

from torch import nn

from hyperlab.options import Options

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}

# "default" keeps PyTorch's own initialisation (uniform in +-1/sqrt(fan_in)); "uniform" and "normal" are the
# naive fixed-scale schemes (as Keras' RandomUniform/RandomNormal) that show why scaling by fan-in matters.
INITS = ("default", "uniform", "normal", "xavier", "kaiming")


def check_shared_options(options: Options) -> None:
    """The ranges of the knobs the MLP and the CNN share."""
    options.require("hidden", options.hidden >= 1, "an integer >= 1")
    options.require("dropout", 0 <= options.dropout < 1, "a probability in [0, 1)")
    options.require("activation", options.activation in ACTIVATIONS, f"one of {list(ACTIVATIONS)}")
    options.require("init", options.init in INITS, f"one of {list(INITS)}")


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
