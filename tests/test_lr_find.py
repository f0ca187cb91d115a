"""tune=lr_find (issue 27, point 4): Lightning's learning-rate finder on an experiment as built, instead of training
it: the curve drawn into the run folder and TensorBoard, the suggestion recorded in metrics.json and printed with
the command that trains with it (which, run, trains with that learning rate); a sweep of it, and bad values, refused
in one line."""

import json
import shlex
import subprocess
import sys
from pathlib import Path

import commands
import pytest
import yaml
from helpers import compose_config, read_events
from PIL import Image

from hyperlab.command_line import check_command_line
from hyperlab.config import check_declared
from hyperlab.errors import ConfigError
from hyperlab.train import train

BIN = Path(sys.executable).parent
BLOBS = ("experiment=blobs", "threads=1", "trainer.max_epochs=2")  # (the finder counts steps, not epochs)


def hyperlab_train(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    return commands.run([str(BIN / "hyperlab-train"), *arguments], capture_output=True, text=True, timeout=300,
                          cwd=cwd)  # fmt: skip


def only_run(log_dir: Path) -> Path:
    (run_dir,) = [path.parent for path in log_dir.glob("blobs/*/metrics.json")]
    return run_dir


def test_the_finder_draws_records_and_prints_the_command_that_trains_with_its_suggestion(tmp_path):
    found = hyperlab_train(*BLOBS, "tune=lr_find", "paths.log_dir=finder", cwd=tmp_path)
    assert found.returncode == 0, found.stderr
    run_dir = only_run(tmp_path / "finder")
    result = json.loads((run_dir / "metrics.json").read_text())
    assert result["status"] == "completed"
    finder = result["lr_find"]
    assert finder["min_lr"] <= finder["suggested_lr"] <= finder["max_lr"]
    assert finder["steps"] == len(finder["lrs"]) == len(finder["losses"]) <= finder["num_training"] == 100
    assert finder["lrs"] == sorted(finder["lrs"]) and finder["lrs"][0] == pytest.approx(1e-8)
    assert result["loop"].startswith("Lightning's loop")  # (the finder steps the lr per mini-batch)
    assert not (run_dir / "checkpoints").exists()  # it trains nothing further
    width, height = Image.open(run_dir / "figures" / "lr_find.png").size
    assert width > 300 and height > 200
    events = read_events(run_dir)
    assert "figures/lr_find" in events.Tags()["images"]
    assert events.Scalars("lr_find/suggested_lr")[0].value == pytest.approx(finder["suggested_lr"])

    printed = [line for line in found.stdout.splitlines() if line.startswith("train with it: ")]
    command = f"hyperlab-train {' '.join(BLOBS)} paths.log_dir=finder optimizer.lr={finder['suggested_lr']:.3g}"
    assert printed == [f"train with it: {command}"]  # the command line as typed, tune=lr_find left out

    program, *arguments = shlex.split(command.replace("paths.log_dir=finder", "paths.log_dir=trained"))
    trained = hyperlab_train(*arguments, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    trained_dir = only_run(tmp_path / "trained")
    assert yaml.safe_load((trained_dir / "config.yaml").read_text())["optimizer"]["lr"] == finder["suggested_lr"]
    trained_result = json.loads((trained_dir / "metrics.json").read_text())
    assert trained_result["status"] == "completed" and trained_result["epochs"] == 2
    assert trained_result["hparams"]["optimizer.lr"] == finder["suggested_lr"]


def test_the_finders_own_overrides_are_left_out_of_the_printed_command(tmp_path, caplog):
    caplog.set_level("INFO", logger="hyperlab.tuning")
    cfg = compose_config(tmp_path / "run", *BLOBS, "tune=lr_find", "tune.num_training=30", "tune.mode=linear",
                         "tune.max_lr=0.5", "optimizer.lr=0.3")  # fmt: skip
    result = train(cfg)
    finder = result["lr_find"]
    assert (finder["num_training"], finder["mode"], finder["max_lr"]) == (30, "linear", 0.5)
    assert 1e-8 <= finder["suggested_lr"] <= 0.5
    assert f"train with it: hyperlab-train optimizer.lr={finder['suggested_lr']:.3g}" in caplog.text


def test_a_sweep_of_the_finder_is_refused_before_anything_runs():
    message = "^tune=lr_find finds one learning rate for one experiment: leave out"
    with pytest.raises(ConfigError, match=f"{message} -m$"):
        check_command_line("train", ["-m", "experiment=blobs", "tune=lr_find", "optimizer.lr=0.1,0.01"])
    with pytest.raises(ConfigError, match=f"{message} repeats"):  # (repeats make a sweep of the command line)
        check_command_line("train", ["experiment=blobs", "tune=lr_find", "repeats=3"])


def test_a_sweep_of_the_finder_is_one_line_and_status_2(tmp_path):
    refused = hyperlab_train("-m", "experiment=blobs", "tune=lr_find", "paths.log_dir=logs", cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr == "error: tune=lr_find finds one learning rate for one experiment: leave out -m\n"
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("tune.min_lr=0", r"tune.min_lr=0.0 is not allowed: expected a learning rate > 0"),
        ("tune.max_lr=1e-9", r"tune.max_lr=1e-09 is not allowed: expected a learning rate > tune.min_lr \(1e-08\)"),
        ("tune.num_training=5", r"tune.num_training=5 is not allowed: expected an integer >= 13"),
        ("tune.mode=cyclic", r"tune.mode='cyclic' is not allowed: expected one of \['exponential', 'linear'\]"),
        ("tune.early_stop_threshold=0.5", r"tune.early_stop_threshold=0.5 is not allowed: expected a number > 1"),
        ("ckpt_path=x.ckpt", r"tune=lr_find finds the learning rate a new run starts with: leave out ckpt_path"),
        ("trainer.fast_dev_run=true", r"tune=lr_find: Lightning's finder skips a trainer.fast_dev_run run"),
    ],
)
def test_a_bad_value_is_refused_in_one_line(tmp_path, override, message):
    with pytest.raises(ConfigError, match=f"^{message}"):
        check_declared(compose_config(tmp_path / "run", "experiment=blobs", "tune=lr_find", override))


def test_a_bad_value_on_the_command_line_is_one_line_and_status_2(tmp_path):
    refused = hyperlab_train("experiment=blobs", "tune=lr_find", "tune.mode=cyclic", cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        "error: tune.mode='cyclic' is not allowed: expected one of ['exponential', 'linear']"
    ]


def test_a_loss_that_blows_up_before_the_threshold_ends_the_search_is_one_line(tmp_path):
    # plain SGD on the line y = 2x + 10 at learning rates up to 1000, the finder's threshold off: the loss becomes
    # infinite (the task stops such a run) before anything else stops the search
    cfg = compose_config(tmp_path / "run", "experiment=line", "threads=1", "tune=lr_find", "tune.max_lr=1000",
                         "tune.early_stop_threshold=null")  # fmt: skip
    blown_up = r"^tune=lr_find: .* at lr [\d.e+-]+, before the finder's early_stop_threshold ended the search"
    with pytest.raises(ConfigError, match=blown_up):
        train(cfg)
    result = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert result["status"] == "failed" and "tune.max_lr" in result["error"]
