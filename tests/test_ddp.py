"""Multi-process training on the CPU (gloo), as Lightning's DDP does it: each process trains on its own share of
every split, the metrics are reduced across processes, and rank 0 alone writes the run's files."""

import json
import os
import subprocess
import sys

import pytest
import torch
from helpers import read_events

from hyperlab.train import train

# digits: 40 mini-batches of 32 an epoch on one device, 20 on each of two
EPOCHS = 10


def hyperlab_train(run_dir, *overrides):
    return subprocess.run(
        [sys.executable, "-m", "hyperlab", "train", f"hydra.run.dir={run_dir}", f"trainer.max_epochs={EPOCHS}",
         "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "threads=1", *overrides],
        capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip


@pytest.fixture(scope="module")
def single_device(tmp_path_factory):
    from helpers import compose_config

    run_dir = tmp_path_factory.mktemp("single") / "run"
    return train(compose_config(run_dir, f"trainer.max_epochs={EPOCHS}", "logger=none"))


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "ddp_spawn"])
def test_two_cpu_processes_share_the_data_and_rank_zero_alone_writes(tmp_path, single_device, strategy):
    run_dir = tmp_path / "run"
    process = hyperlab_train(run_dir, "trainer=ddp", f"trainer.strategy={strategy}")
    assert process.returncode == 0, process.stderr[-3000:]
    result = json.loads((run_dir / "metrics.json").read_text())
    assert result["status"] == "completed" and "DDPStrategy" in result["loop"]
    assert result["epochs"] == EPOCHS and result["best_score"] is not None and result["train_time_s"] > 0
    # each process took half the steps of one device: 20 an epoch
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == EPOCHS * 20
    # the reduced metrics: as good as one device within noise (their batches differ, so do the numbers)
    assert abs(result["metrics"]["test/acc"] - single_device["metrics"]["test/acc"]) < 0.04
    assert result["metrics"]["test/acc"] > 0.9
    # rank 0 alone wrote: one record, one TensorBoard writer (one process), every figure once
    assert (run_dir / "config.yaml").is_file() and (run_dir / "figures" / "confusion_matrix.png").is_file()
    writers = {path.name.split(".")[4] for path in run_dir.glob("events.out.tfevents.*")}
    assert len(writers) == 1 or strategy == "ddp_spawn"  # (spawn: rank 0 is a new process for fit and for test)
    assert len(read_events(run_dir).Scalars("val/acc")) == EPOCHS  # once per epoch, not per process
    assert "train/loss_step" in read_events(run_dir).Tags()["scalars"]


def test_a_sweep_refuses_the_strategy_that_re_runs_the_command_line(tmp_path):
    process = subprocess.run(
        [sys.executable, "-m", "hyperlab", "train", "-m", f"hydra.sweep.dir={tmp_path}", "trainer=ddp",
         "trainer.accelerator=cpu", "trainer.max_epochs=1", "seed=0,1"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    records = [json.loads(path.read_text()) for path in sorted(tmp_path.glob("*/metrics.json"))]
    assert len(records) == 2 and all(record["status"] == "failed" for record in records)
    assert "re-run the whole sweep: use trainer.strategy=ddp_spawn" in records[0]["error"]
    assert process.stderr.count("error: trainer.strategy: DDPStrategy starts its other processes") == 2
    assert not list(tmp_path.glob("*/config.yaml"))  # refused before the run wrote anything but its record
