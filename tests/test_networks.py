"""The networks are built as their knobs say."""

import pytest
import torch
from torch import nn

from hyperlab.classes import build_trusted
from hyperlab.errors import ConfigError
from hyperlab.networks import MLP, LineModel
from hyperlab.networks.mlp import hidden_widths

MLP_KNOBS = dict(hidden=128, depth=2, taper=1.0, dropout=0.0, activation="relu", batchnorm=False, init="default")


def mlp(**knobs):
    return MLP(input_shape=[1, 28, 28], num_outputs=10, **{**MLP_KNOBS, **knobs})


def test_the_line_model_has_exactly_a_gradient_and_an_intercept():
    model = LineModel(input_shape=[1], num_outputs=1)
    assert [name for name, _ in model.named_parameters()] == ["gradient", "intercept"]
    with torch.no_grad():
        model.gradient.fill_(2)
        model.intercept.fill_(10)
    assert model(torch.tensor([[0.0], [1.0]])).flatten().tolist() == [10.0, 12.0]


def test_the_line_model_refuses_data_with_more_than_one_feature():
    with pytest.raises(ValueError, match="use model=mlp"):
        LineModel(input_shape=[1, 8, 8], num_outputs=10)


def test_the_sessions_network_is_784_128_64_10():
    net = mlp(taper=0.5)
    shapes = [tuple(p.shape) for name, p in net.named_parameters() if name.endswith("weight")]
    assert shapes == [(128, 784), (64, 128), (10, 64)]
    assert net(torch.rand(5, 1, 28, 28)).shape == (5, 10)


def test_depth_zero_is_a_linear_model():
    net = mlp(depth=0)
    assert len(net.hidden) == 0 and net.head.in_features == 784


def test_widths_taper_but_never_vanish():
    assert hidden_widths(256, 4, 0.5) == [256, 128, 64, 32]
    assert hidden_widths(4, 4, 0.1) == [4, 1, 1, 1]


def test_batchnorm_dropout_and_activation_are_placed_per_layer():
    net = mlp(depth=3, dropout=0.3, batchnorm=True, activation="tanh")
    kinds = [type(m).__name__ for m in net.hidden]
    assert kinds == ["Linear", "BatchNorm1d", "Tanh", "Dropout"] * 3


@pytest.mark.parametrize(
    "init, std",
    [("normal", 0.05), ("uniform", 0.05 / 3**0.5), ("kaiming", (2 / 784) ** 0.5), ("xavier", None)],
)
def test_init_schemes_set_the_scale_of_the_weights(init, std):
    torch.manual_seed(0)
    first = mlp(init=init).hidden.fc1
    assert torch.all(first.bias == 0)
    if std is None:  # xavier uniform with relu's gain: bound = gain * sqrt(6 / (fan_in + fan_out))
        bound = 2**0.5 * (6 / (784 + 128)) ** 0.5
        assert first.weight.abs().max() <= bound and first.weight.abs().max() > 0.9 * bound
    else:
        assert first.weight.std().item() == pytest.approx(std, rel=0.05)


def test_the_default_init_is_pytorchs():
    torch.manual_seed(0)
    default = mlp().hidden.fc1
    torch.manual_seed(0)
    assert torch.equal(default.weight, nn.Linear(784, 128).weight)


@pytest.mark.parametrize(
    "target",
    ["os.system", "hyperlab.networks.cnn.torch.hub.load", "torch.optim.SGD", "torch.nn.Linear", "no.such.thing", None],
)
def test_only_hyperlab_networks_are_built_from_hyper_parameters(target):
    with pytest.raises(ConfigError, match="^model._target_=.* is not allowed"):
        build_trusted({"_target_": target, "command": "touch /tmp/owned"}, "model")


def test_nested_targets_are_passed_as_plain_values_never_called():
    config = {"_target_": "hyperlab.networks.LineModel", "input_shape": [1], "num_outputs": 1}
    assert isinstance(build_trusted(config, "model"), LineModel)
    hostile = {**config, "input_shape": {"_target_": "os.system", "_args_": ["touch /tmp/owned"]}}
    with pytest.raises(ValueError, match="the line model maps one input feature"):
        build_trusted(hostile, "model")
