"""Every way a run ends leaves a true record: signals in every phase, a second process on the same folder, resuming
a run that had finished its epochs (or all of it), a checkpoint outside its run, a loss that explodes."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import commands
import pytest
from helpers import compose_config

from hyperlab.errors import ConfigError, RunFolderInUse
from hyperlab.folder_locks import locked
from hyperlab.train import train

TESTS = Path(__file__).parent
PAUSING = ["data._target_=pauses.PausingDigits", "+callbacks.pause._target_=pauses.Pause", "callbacks=figures",
           "logger.tensorboard._target_=pauses.PausingTensorBoardLogger", "trainer.enable_progress_bar=false",
           "trainer.max_epochs=3"]  # fmt: skip


def start(arguments: list[str], phase: str, marker: Path) -> commands.Command:
    """`hyperlab-train <arguments>` in a process that holds at `phase` (see tests/pauses.py)."""
    env = {**os.environ, "PYTHONPATH": str(TESTS), "HYPERLAB_PAUSE_AT": phase, "HYPERLAB_PAUSE_FILE": str(marker)}
    return commands.start([sys.executable, "-m", "hyperlab", "train", *arguments], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip


def wait_for(marker: Path, process: commands.Command) -> None:
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert process.poll() is None, process.stderr.read()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("phase", ["setup", "fit", "test", "figures", "record"])
def test_a_signal_in_any_phase_stops_the_run_with_status_130_and_records_it(tmp_path, phase, stop):
    run_dir = tmp_path / "run"
    process = start([f"hydra.run.dir={run_dir}", *PAUSING], phase, tmp_path / "at")
    wait_for(tmp_path / "at", process)
    process.send_signal(stop)
    assert process.wait(timeout=120) == 130
    assert f"interrupted: stopped by {stop.name}" in process.stderr.read()
    result = json.loads((run_dir / "metrics.json").read_text())
    assert result["status"] == "interrupted" and stop.name in result["error"]
    if phase == "fit":  # stopped at the next step: after the first epoch, before the third
        assert 1 <= result["epochs"] < 3 and "train/loss" in result["metrics"]
    if phase in ("test", "figures", "record"):  # what the run had reached is kept
        assert result["epochs"] == 3 and "val/acc" in result["metrics"] and result["best_checkpoint"]


def test_sigterm_during_a_runs_test_stops_the_whole_sweep(tmp_path):
    sweep_dir = tmp_path / "sweep"
    process = start(["-m", f"hydra.sweep.dir={sweep_dir}", *PAUSING, "seed=1,2"], "test", tmp_path / "at")
    wait_for(tmp_path / "at", process)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 130
    records = {path.parent.name: json.loads(path.read_text()) for path in sweep_dir.glob("*/metrics.json")}
    assert [record["status"] for record in records.values()] == ["interrupted"]  # the second run never started
    first = (sweep_dir / "summary.md").read_text().splitlines()[2]  # the table of what the sweep made
    assert first.startswith("2 planned runs: 1 interrupted, 1 not run"), first
    again = next(line for line in process.stderr.read().splitlines() if line.startswith("to finish it: "))
    assert again.endswith(f"hydra.sweep.dir={sweep_dir} resume=true") and " -m " in again


def test_a_second_process_on_a_run_folder_in_use_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    first = start([f"hydra.run.dir={run_dir}", *PAUSING], "fit", tmp_path / "at")
    wait_for(tmp_path / "at", first)
    second = commands.run([sys.executable, "-m", "hyperlab", "train", f"hydra.run.dir={run_dir}", "resume=true"],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert second.returncode == 2 and f"error: {run_dir} is in use by another run" in second.stderr
    first.send_signal(signal.SIGINT)
    assert first.wait(timeout=120) == 130
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "interrupted"  # the first one's record
    assert not list(run_dir.glob("checkpoints/*-v1.ckpt")) and len(list(run_dir.glob("events.out.*"))) == 1


def test_a_second_sweep_into_a_sweep_folder_in_use_is_refused(tmp_path):
    sweep_dir = tmp_path / "sweep"
    first = start(["-m", f"hydra.sweep.dir={sweep_dir}", *PAUSING, "seed=1,2"], "fit", tmp_path / "at")
    wait_for(tmp_path / "at", first)
    second = commands.run([sys.executable, "-m", "hyperlab", "train", "-m", f"hydra.sweep.dir={sweep_dir}", "seed=3"],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert second.returncode == 2 and "is in use by another sweep" in second.stderr
    first.send_signal(signal.SIGINT)
    assert first.wait(timeout=120) == 130
    assert not (sweep_dir / "seed=3").exists()


def test_the_lock_goes_with_its_process(tmp_path):
    with locked(tmp_path), pytest.raises(RunFolderInUse), locked(tmp_path):
        pass  # a second holder, in this process too
    with locked(tmp_path):  # released: taken again
        pass


def test_a_run_killed_after_its_last_epoch_resumes_with_every_metric(tmp_path):
    """Killed (SIGKILL) during its test: the resumed run tests the best checkpoint and keeps the train and val
    metrics and training time of the epochs it does not train again. (The run had a callback of the user's own:
    the stored config records it, and the resume is not refused for it.)"""
    run_dir = tmp_path / "run"
    own_callback = ["+callbacks.pause._target_=pauses.Pause", "callbacks=figures", "trainer.max_epochs=3"]
    process = start([f"hydra.run.dir={run_dir}", *own_callback], "test", tmp_path / "at")
    wait_for(tmp_path / "at", process)
    process.kill()
    process.wait(timeout=60)
    assert not (run_dir / "metrics.json").exists()
    last = run_dir / "checkpoints" / "last.ckpt"
    result = train(compose_config(run_dir, f"ckpt_path={last}", "trainer.max_epochs=3", "callbacks=figures"))
    assert result["status"] == "completed" and result["epochs"] == 3
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "test/acc"} <= set(result["metrics"])
    assert result["train_time_s"] > 0
    # resuming the completed run does nothing unless asked for more epochs
    before = (run_dir / "metrics.json").read_bytes()
    again = train(compose_config(run_dir, f"ckpt_path={last}", "trainer.max_epochs=3"))
    assert again == json.loads(before) and (run_dir / "metrics.json").read_bytes() == before
    more = train(compose_config(run_dir, f"ckpt_path={last}", "trainer.max_epochs=4"))
    assert more["epochs"] == 4 and {"train/loss", "val/acc", "test/acc"} <= set(more["metrics"])
    assert json.loads((run_dir / "attempts" / "1" / "metrics.json").read_text())["epochs"] == 3  # kept aside
    with pytest.raises(ConfigError, match="trainer.max_epochs=2 is below the 4 epochs"):
        train(compose_config(run_dir, f"ckpt_path={last}", "trainer.max_epochs=2"))


def test_resuming_needs_a_file_in_its_runs_checkpoints_folder_or_a_named_run_folder(tmp_path):
    run = train(compose_config(tmp_path / "run", "trainer.max_epochs=2", "logger=none"))
    loose = tmp_path / "shared" / "last.ckpt"
    loose.parent.mkdir()
    shutil.copy(Path(run["run_dir"]) / "checkpoints" / "last.ckpt", loose)
    logs = tmp_path / "logs"
    process = commands.run([sys.executable, "-m", "hyperlab", "train", f"ckpt_path={loose}", f"paths.log_dir={logs}"],
                             capture_output=True, text=True, timeout=300)  # fmt: skip
    assert process.returncode == 2 and "is not in a run's checkpoints/ folder" in process.stderr
    assert not (tmp_path / "checkpoints").exists() and not list(tmp_path.glob("*.json"))  # the grandparent: untouched
    named = tmp_path / "continued"
    command = [sys.executable, "-m", "hyperlab", "train", f"ckpt_path={loose}", f"hydra.run.dir={named}",
               "trainer.max_epochs=3", "logger=none"]  # fmt: skip
    process = commands.run(command, capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr[-2000:]
    assert json.loads((named / "metrics.json").read_text())["epochs"] == 3


def test_a_loss_that_explodes_but_stays_finite_is_diverged(make_config):
    result = train(make_config("optimizer=adam", "optimizer.lr=1e9", "trainer.max_epochs=3", "logger=none"))
    assert result["status"] == "diverged" and "the loss exploded" in result["error"]
    assert result["epochs"] < 3 and not result["best_checkpoint"]


def test_a_bumpy_but_healthy_run_is_not_diverged(make_config):
    result = train(make_config("optimizer=sgd", "optimizer.lr=0.5", "trainer.max_epochs=5", "logger=none"))
    assert result["status"] == "completed", result["error"]
