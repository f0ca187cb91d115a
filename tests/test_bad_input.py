"""Bad input is refused before any model is built, with a short message that names the key."""

import sys
from pathlib import Path

import commands
import pytest
from hydra.errors import ConfigCompositionException

from hyperlab.command_line import check_command_line
from hyperlab.config import validate
from hyperlab.errors import ConfigError
from hyperlab.experiment import build
from hyperlab.train import train


def test_unknown_key_is_refused(make_config):
    with pytest.raises(ConfigCompositionException, match="model.dropuot"):
        make_config("model.dropuot=0.1")
    with pytest.raises(ConfigError, match=r"^model.dropuot is not an option of MLP: did you mean model.dropout\?"):
        validate(make_config("+model.dropuot=0.1"))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.dropout=abc", "model.dropout='abc' is not allowed: expected float"),
        ("model.batchnorm=1", "model.batchnorm=1 is not allowed: expected bool"),
        ("data.batch_size=1.5", "data.batch_size=1.5 is not allowed: expected int"),
        ("optimizer.betas=[0.9]", r"optimizer.betas=\[0.9\] is not allowed: expected tuple\[float, float\]"),
    ],
)
def test_wrong_type_is_refused_naming_the_key(make_config, override, message):
    with pytest.raises(ConfigError, match=f"^{message}"):
        validate(make_config(override))


def test_unknown_option_lists_the_available_ones(make_config):
    with pytest.raises(Exception, match="optimizer/adamx") as error:
        make_config("optimizer=adamx")
    for option in ("sgd", "adam", "adamw", "rmsprop"):
        assert f"\t{option}\n" in str(error.value) + "\n"


@pytest.mark.parametrize(
    "override, key",
    [
        ("model.dropout=1.0", "model.dropout"),
        ("model.dropout=-0.1", "model.dropout"),
        ("optimizer.lr=0", "optimizer.lr"),
        ("optimizer.lr=-0.01", "optimizer.lr"),
        ("model.depth=-1", "model.depth"),
        ("data.batch_size=0", "data.batch_size"),
        ("trainer.max_epochs=0", "trainer.max_epochs"),
        ("model.activation=swish", "model.activation"),
        ("monitor.metric=val/acx", "monitor.metric"),
    ],
)
def test_values_out_of_range_are_refused_naming_the_key(make_config, override, key):
    with pytest.raises(ConfigError, match=f"^{key}=") as error:
        validate(make_config(override))
    assert "expected" in str(error.value)


def test_a_task_that_does_not_fit_the_data_is_refused(make_config):
    with pytest.raises(ConfigError, match="task=classification does not fit"):
        build(make_config("experiment=line", "task=classification"))


def test_a_used_run_folder_is_never_overwritten(make_config, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_text("{}")
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        train(make_config("trainer.max_epochs=1"))
    assert (tmp_path / "run" / "metrics.json").read_text() == "{}"


def run_cli(tmp_path, *overrides):
    return commands.run(
        [sys.executable, "-m", "hyperlab", "train", *overrides, f"paths.log_dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_refuses_a_bad_value_with_one_line_and_status_2(tmp_path):
    result = run_cli(tmp_path, "model.dropout=1.5")
    assert result.returncode == 2
    assert "error: model.dropout=1.5 is not allowed: expected a probability in [0, 1)" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not list(tmp_path.rglob("*.ckpt")) and not list(tmp_path.rglob("events.out.tfevents*"))


def test_cli_refuses_an_unknown_option_listing_the_others(tmp_path):
    result = run_cli(tmp_path, "optimizer=adamx")
    assert result.returncode == 2
    expected = (
        "error: optimizer=adamx is not an option of optimizer: expected one of ['adam', 'adamw', 'rmsprop', 'sgd']"
    )
    assert result.stderr.strip() == expected


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.dropuot=0.1"], "error: model.dropuot is not a key of the config: did you mean model.dropout?"),
        (["+model.dropuot=0.1"], "error: model.dropuot is not an option of MLP: did you mean model.dropout?"),
        (["model.dropout=abc"], "error: model.dropout='abc' is not allowed: expected float"),
        (
            ["-m", "model.dropuot=0.1,0.2"],
            "error: model.dropuot is not a key of the config: did you mean model.dropout?",
        ),
        (["seed=abc"], "error: seed: Value 'abc' of type 'str' could not be converted to Integer"),
        (["lr=0.01"], "error: lr is not a key of the config: did you mean optimizer.lr?"),  # (a group's key)
    ],
)
def test_cli_refuses_a_misspelt_key_or_a_wrong_type_in_one_line_before_anything_is_built(tmp_path, overrides, message):
    result = run_cli(tmp_path, *overrides)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, result.stderr
    assert not list(tmp_path.rglob("metrics.json"))


def test_a_required_key_left_out_is_named(make_config):
    with pytest.raises(ConfigError, match=r"^data.path is required"):
        validate(make_config("experiment=animals"))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("seed=-1", "seed=-1 is not allowed: expected an integer from 0 to 4294967295"),
        ("seed=99999999999", "seed=99999999999 is not allowed"),
        ("threads=999", "threads=999 is not allowed: expected an integer from 1 to"),
        ("+foo=1", "foo is not a key of the config"),
    ],
)
def test_top_level_values_out_of_range_and_unknown_keys_are_refused(make_config, override, message):
    with pytest.raises(ConfigError, match=message.replace("(", "\\(").replace(")", "\\)")):
        validate(make_config(override))


def test_a_log_folder_that_cannot_be_written_is_refused_in_one_line(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    for sweep in ([], ["-m"]):
        result = commands.run([sys.executable, "-m", "hyperlab", "train", *sweep, f"paths.log_dir={blocker / 'logs'}"],
                                capture_output=True, text=True, timeout=300)  # fmt: skip
        assert result.returncode == 2, result.stderr[-2000:]
        assert (
            f"error: cannot make the run folder {blocker / 'logs'}" in result.stderr
            and "is not a folder" in result.stderr
        )
        assert "Traceback" not in result.stderr


def test_hydras_own_flags_and_searched_values_pass_the_command_line_check(tmp_path):
    check_command_line("train", ["-m", "hparams_search=optuna", "optimizer.lr=tag(log,interval(1e-4,0.1))"])
    check_command_line("train", ["--config-name=finetune", "finetune.lr_factor=0.5"])  # left to Hydra
    shown = run_cli(tmp_path, "--cfg", "job")
    assert shown.returncode == 0 and "_target_: hyperlab.data.DigitsDataModule" in shown.stdout, shown.stderr


def test_every_command_refuses_a_missing_required_key_in_one_line(tmp_path):
    bin_dir = Path(sys.executable).parent
    for command in ("hyperlab-eval", "hyperlab-predict", "hyperlab-sweep-table", "hyperlab-finetune"):
        arguments = [f"paths.log_dir={tmp_path}"] if command == "hyperlab-finetune" else []
        done = commands.run([str(bin_dir / command), *arguments], capture_output=True, text=True, timeout=300)
        assert done.returncode == 2 and done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
