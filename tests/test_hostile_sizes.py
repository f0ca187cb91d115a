"""A network too large for the machine, or one that does not fit the data, and Trainer values Lightning would fail
on: each refused in one line naming the key, before anything is allocated (issue 29: memory amplification, and the
command-line mistakes that gave tracebacks)."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest

from hyperlab.config import check_declared, compose_config
from hyperlab.errors import ConfigError, DataError
from hyperlab.network_checks import check_stored_network
from hyperlab.networks import footprint
from hyperlab.networks import options as network_options
from hyperlab.networks.footprint import NetworkRefused
from hyperlab.networks.options import CNNOptions, LineModelOptions, MLPOptions, PointOptions
from hyperlab.options import Options

MEMORY = 8 * 10**9  # the machine these tests pretend to run on: 8 GB, a limit of 2 GB
MLP_VALUES = {"_target_": "hyperlab.networks.MLP", "hidden": 128, "depth": 2, "taper": 1.0, "dropout": 0.0,
              "activation": "relu", "batchnorm": False, "init": "default"}  # fmt: skip
CNN_VALUES = {"_target_": "hyperlab.networks.CNN", "channels": [32, 64], "kernel_size": 3, "hidden": 128,
              "dropout": 0.0, "activation": "relu", "batchnorm": True, "init": "default",
              "channels_last": False}  # fmt: skip
DECLARED = {"MLP": (MLPOptions, MLP_VALUES), "CNN": (CNNOptions, CNN_VALUES)}


@pytest.fixture(autouse=True)
def eight_gigabytes(monkeypatch):
    monkeypatch.setattr(footprint, "physical_memory", lambda: MEMORY)


def refusal(network: str, input_shape: list[int] | None, num_outputs: int = 10, **changed) -> str:
    declared, options = DECLARED[network]
    with pytest.raises(NetworkRefused) as error:
        footprint.check_network(declared, {**options, **changed}, input_shape, num_outputs, 32, "model")
    return str(error.value)


# every option that sizes a network, at a huge value, on the data's inputs and on any data's (the config's check)
@pytest.mark.parametrize("input_shape", [[1, 28, 28], None], ids=["data", "any-data"])
@pytest.mark.parametrize(
    ("network", "key", "value"),
    [
        ("MLP", "hidden", 10**7),
        ("MLP", "hidden", 10**400),  # (past what a float holds)
        ("MLP", "depth", 10**6),
        ("MLP", "depth", 10**15),
        ("CNN", "hidden", 10**7),
        ("CNN", "channels", [10**5, 10**5]),
        ("CNN", "channels", [64, 10**6]),
        ("CNN", "kernel_size", 10001),
        ("CNN", "kernel_size", 100001),
    ],
)
def test_a_huge_option_is_refused_naming_it(network, key, value, input_shape):
    if key == "kernel_size" and input_shape is not None:
        message = refusal(network, input_shape, **{key: value})  # (on 28x28 images: wider than 55 reads padding)
        assert message.startswith(f"model.kernel_size={value} is not allowed: expected an odd integer up to 55 for ")
        return
    message = refusal(network, input_shape, **{key: value})
    assert message.startswith(f"model.{key}={value!r} is not allowed: the network would take at least ")
    assert "over the limit of 2 GB (1/4 of this machine's 8 GB of memory)" in message


def test_a_tapering_mlp_is_counted_layer_by_layer():
    message = refusal("MLP", [64], hidden=128, taper=4.0, depth=40)  # (128 x 4^39 wide at the end)
    assert message.startswith("model.depth=40 is not allowed: the network would take at least ")
    declared, options = DECLARED["MLP"]
    footprint.check_network(declared, {**options, "taper": 0.5, "depth": 10**5}, [64], 10, 32, "model")


@pytest.mark.parametrize("network", ["MLP", "CNN"])
def test_inputs_too_large_are_named_as_such(network):
    message = refusal(network, [1, 10**6, 10**6])
    assert message.startswith("model on inputs of shape [1, 1000000, 1000000] is not allowed: the network would take")


@pytest.mark.parametrize(
    ("declared", "options", "input_shape", "num_outputs", "message"),
    [
        (CNNOptions, {**CNN_VALUES, "channels": [8] * 5}, [1, 8, 8], 10,
         "model.channels=[8, 8, 8, 8, 8] is not allowed: expected at most 3 blocks for images of 8x8"),
        (CNNOptions, CNN_VALUES, [64], 10, "model: the CNN takes images (channels, height, width)"),
        (LineModelOptions, {}, [1, 8, 8], 10, "model: the line model maps one input feature to one output"),
        (PointOptions, {}, [2], 10, "model: a point has 1 or 2 coordinates; this data asks for 10"),
    ],
    ids=["cnn-poolings", "cnn-on-a-table", "line-on-images", "point-of-10"],
)  # fmt: skip
def test_a_network_that_does_not_fit_the_data_is_refused(declared, options, input_shape, num_outputs, message):
    with pytest.raises(NetworkRefused) as error:
        footprint.check_network(declared, options, input_shape, num_outputs, 32, "model")
    assert str(error.value).startswith(message)


@pytest.mark.parametrize(("network", "input_shape"), [("MLP", [1, 8, 8]), ("CNN", [3, 32, 32])])
def test_the_count_is_the_networks_own(network, input_shape):
    import hyperlab.networks

    declared, options = DECLARED[network]
    values = Options({key: value for key, value in options.items() if key != "_target_"})
    built = getattr(hyperlab.networks, network)(input_shape, 10, **values)
    assert declared.footprint(values, input_shape, 10).parameters == sum(p.numel() for p in built.parameters())


def test_the_default_networks_fit():
    for network, shape in (("MLP", [1, 28, 28]), ("CNN", [3, 32, 32]), ("CNN", [1, 8, 8])):
        declared, options = DECLARED[network]
        footprint.check_network(declared, options, shape, 10, 1024, "model")


def test_a_network_refuses_itself_before_allocating_naming_its_key():
    from hyperlab.networks import MLP

    options = {key: value for key, value in MLP_VALUES.items() if key != "_target_"}
    with pytest.raises(ConfigError, match=r"^model\.hidden=10000000 is not allowed: the network would take"):
        MLP([64], 10, **{**options, "hidden": 10**7})  # (the parameters alone: 400 TB)
    with network_options.from_checkpoint(), pytest.raises(ValueError, match=r"^network\.hidden=10000000 "):
        MLP([64], 10, **{**options, "hidden": 10**7})  # (a checkpoint's rebuild names its file: a ValueError)


@pytest.mark.parametrize(
    ("changed", "input_shape", "message"),
    [
        ({"hidden": 25000}, [1, 8, 8], "network.hidden=25000 is not allowed: the network would take at least 10 GB"),
        ({"hidden": 10**6}, [1, 8, 8], "network.hidden=1000000 is not allowed: the network would take at least"),
        ({}, [10**12], "network on inputs of shape [1000000000000] is not allowed: the network would take"),
        ({"hidden": 2000}, [1, 8, 8], "network.hidden=2000 is not allowed: its 4,134,001 parameters would not fit "
                                      "in the file's 1 KB (it holds the weights)"),
    ],
    ids=["hidden-25000", "hidden-1e6", "input-1e12", "weights-past-the-file"],
)  # fmt: skip
def test_a_checkpoints_network_is_checked_before_it_is_built(tmp_path, changed, input_shape, message):
    path = tmp_path / "small.ckpt"
    path.write_bytes(b"\0" * 1000)  # (the file's size is what check_stored_network reads of it)
    network = {**MLP_VALUES, **changed, "input_shape": input_shape}
    with pytest.raises(DataError) as error:  # (read_checkpoint's last check, for every command that reads one)
        check_stored_network(network, input_shape, path)
    assert str(error.value).startswith(f"{path} is refused: {message}")


@pytest.fixture(scope="module")
def default_config():
    return compose_config("train", [])


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("accumulate_grad_batches", 0, "an integer >= 1"),
        ("val_check_interval", 0, "null (once an epoch), an integer >= 1 (training batches), a share of an epoch"),
        ("val_check_interval", 0.0, "null (once an epoch)"),
        ("val_check_interval", 1.5, "null (once an epoch)"),
        ("detect_anomaly", "yes", "true or false"),
        ("inference_mode", 1, "true or false"),
        ("enable_checkpointing", "no", "true or false, or null (Lightning's default)"),
    ],
)
def test_trainer_values_lightning_fails_on_are_refused(default_config, key, value, allowed):
    cfg = copy.deepcopy(default_config)
    cfg.trainer[key] = value
    with pytest.raises(ConfigError) as error:
        check_declared(cfg)
    assert str(error.value).startswith(f"trainer.{key}={value!r} is not allowed: expected {allowed}")


@pytest.mark.parametrize("value", [None, 2, 0.25, 1.0, "00:00:10:00"])
def test_trainer_values_lightning_takes_pass(default_config, value):
    cfg = copy.deepcopy(default_config)
    cfg.trainer.val_check_interval = value
    cfg.trainer.detect_anomaly = True
    check_declared(cfg)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.hidden=10000000"], "error: model.hidden=10000000 is not allowed: the network would take at least "),
        (["trainer.detect_anomaly=yes"], "error: trainer.detect_anomaly='yes' is not allowed: expected true or false"),
    ],
    ids=["too-large", "a-text-for-a-switch"],
)
def test_the_command_line_refuses_in_one_line_before_torch(tmp_path, overrides, message):
    command = Path(sys.executable).parent / "hyperlab-train"  # (the entry point: torch is not imported to refuse)
    done = subprocess.run([command, *overrides, f"paths.log_dir={tmp_path}"], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), done.stderr[-2000:]
    assert not any(tmp_path.iterdir())
