"""A run prints what the user needs and no third-party noise, and its train.log holds the whole log: hyperlab's
lines, Lightning's messages and Python's warnings (src/hyperlab/quiet.py, conf/hydra/default.yaml)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

# In Lightning's loop (forced by gradient clipping), Lightning warns with a Python warning that digits' 40 training
# batches are fewer than log_every_n_steps: a real warning for train.log to hold.
WARNING = "The number of training batches (40) is smaller than the logging interval Trainer(log_every_n_steps=50)"
NOISE = ("💡 Tip: For seamless cloud", "litlogger", "LeafSpec", "`srun` command is available")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[str, str]:
    """One digits run (1 epoch, with the model summary), on a machine with SLURM's `srun` (a script of that name on
    the PATH: Lightning then advises using it): its console output and its train.log."""
    log_dir = tmp_path_factory.mktemp("logs")
    bin_dir = tmp_path_factory.mktemp("bin")
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "srun").chmod(0o755)
    process = subprocess.run(
        [sys.executable, "-m", "hyperlab", "train", "trainer.max_epochs=1", "trainer.gradient_clip_val=0.5",
         "trainer.enable_model_summary=true", f"paths.log_dir={log_dir}"],
        capture_output=True, text=True, timeout=300, cwd=log_dir,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
    )  # fmt: skip
    assert process.returncode == 0, process.stderr[-2000:]
    (log,) = Path(log_dir).glob("digits/*/train.log")
    return process.stdout + process.stderr, log.read_text()


@pytest.mark.parametrize("noise", NOISE)
def test_a_run_prints_no_third_party_noise(run, noise):
    output, log = run
    assert noise not in output and noise not in log


def test_the_model_summary_counts_the_networks_flops(run):
    output, _ = run
    assert "Total FLOPs: 0" not in output and "Total FLOPs: " in output


def test_train_log_holds_lightnings_messages_and_python_warnings_as_well_as_hyperlabs(run):
    output, log = run
    for line in ("GPU available: ", "`Trainer.fit` stopped: `max_epochs=1` reached.", "Restoring states from the "):
        assert f"[lightning.pytorch.utilities.rank_zero][INFO] - {line}" in log, line
    assert "[py.warnings][WARNING] - " in log and WARNING in log
    assert "[hyperlab.train][INFO] - training loop: " in log and "digits: trained 1 epochs" in log
    assert output.count(WARNING) == 1  # logged, not also printed by `warnings`
    assert output.count("GPU available: ") == 1  # through Hydra's handlers, not also Lightning's own
