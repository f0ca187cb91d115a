"""logger=wandb (issue 27, point 6), the optional extra `pip install -e ".[wandb]"`: each run is a wandb run of its
own, offline by default, in the run folder, named after it, given the end-of-run record every logger gets (the
hyper-parameters, the status, the final metrics); without the package, logger=wandb is refused in one line.

The offline run is read from its transaction log (`run-<id>.wandb`, the only place wandb 0.31 writes an offline
run's summary and config): wandb's own record format (leveldb's log: 32 KiB blocks of chunks, each with a 7-byte
header) holding wandb's own protobuf `Record`s."""

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import compose_config

from hyperlab.config import check_declared
from hyperlab.errors import ConfigError
from hyperlab.train import train

BLOCK = 32 * 1024  # wandb's record log: leveldb's block size
FULL, LAST = 1, 4  # chunk types that end a record


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """wandb offline, and everything it writes outside the run folder in tmp_path (not the user's home)."""
    pytest.importorskip("wandb", reason='the optional extra: pip install -e ".[wandb]"')
    monkeypatch.setenv("WANDB_MODE", "offline")
    for variable, folder in [("WANDB_DIR", "wandb"), ("WANDB_CACHE_DIR", "cache"), ("WANDB_CONFIG_DIR", "config"),
                             ("WANDB_DATA_DIR", "data")]:  # fmt: skip
        monkeypatch.setenv(variable, str(tmp_path / folder))
    monkeypatch.delenv("WANDB_PROJECT", raising=False)


def records(path: Path) -> Iterator[Any]:
    """The protobuf records of a wandb transaction log (`run-<id>.wandb`)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    position, pending = 7, b""  # (after the file's header: ":W&B", a magic number, a version)
    while position + 7 <= len(data):
        if BLOCK - position % BLOCK < 7:  # a block's tail too short for a header is padding
            position += BLOCK - position % BLOCK
            continue
        length, kind = int.from_bytes(data[position + 4 : position + 6], "little"), data[position + 6]
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def offline_run(folder: Path) -> dict[str, Any]:
    """An offline wandb run folder, as the W&B server would show it: its name and project, its summary and config
    (each the last value of every key) and its exit code."""
    (log,) = folder.glob("run-*.wandb")
    run: dict[str, Any] = {"summary": {}, "config": {}}
    for record in records(log):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.update(name=record.run.display_name, project=record.run.project)
        elif kind in ("summary", "config"):
            for item in getattr(record, kind).update:
                run[kind][item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "exit":
            run["exit_code"] = record.exit.exit_code
    return run


def wandb_runs(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "wandb").glob("offline-run-*"))


def test_a_run_is_an_offline_wandb_run_in_its_folder_with_its_record(offline, tmp_path):
    run_dir = tmp_path / "logs" / "blobs" / "first"
    result = train(compose_config(run_dir, "experiment=blobs", "threads=1", "trainer.max_epochs=2", "logger=wandb"))
    (folder,) = wandb_runs(run_dir)
    run = offline_run(folder)
    assert (run["name"], run["project"], run["exit_code"]) == ("first", "blobs", 0)
    summary = run["summary"]
    assert summary["status"] == "completed"
    for key in ("test/acc", "test/loss", "val/loss"):  # the final metrics, also as the record's hp/...
        assert summary[key] == pytest.approx(result["metrics"][key], abs=1e-6)
        assert summary[f"hp/{key}"] == pytest.approx(result["metrics"][key], abs=1e-6)
    assert summary["val/loss_best"] == pytest.approx(result["best_score"], abs=1e-6)  # the monitored metric's best
    assert summary["hp/epochs"] == 2 and summary["hp/completed"] == 1
    assert run["config"]["optimizer.lr"] == result["hparams"]["optimizer.lr"] == 0.01
    assert run["config"]["model"] == result["hparams"]["model"] == "MLP"  # (outside Hydra: the class)


def test_each_run_of_a_process_is_a_wandb_run_of_its_own(offline, tmp_path):
    import wandb

    leftover = wandb.init(dir=str(tmp_path / "leftover"), project="other")  # a run an earlier failed run left open
    names = []
    for name in ("one", "two"):
        run_dir = tmp_path / "logs" / "blobs" / name
        train(compose_config(run_dir, "experiment=blobs", "threads=1", "trainer.max_epochs=1", "logger=wandb"))
        (folder,) = wandb_runs(run_dir)
        names.append(offline_run(folder)["name"])
    assert names == ["one", "two"]
    (left,) = (tmp_path / "leftover" / "wandb").glob("offline-run-*")
    assert offline_run(left)["exit_code"] == 1  # closed as failed by the first run's logger
    assert leftover.id not in {folder.name.rsplit("-", 1)[-1] for folder in wandb_runs(tmp_path / "logs" / "blobs")}


def test_a_failed_run_is_a_failed_wandb_run(offline, tmp_path):
    run_dir = tmp_path / "logs" / "line" / "diverged"
    # plain SGD at learning rate 10 on the line y = 2x + 10: the loss becomes infinite in the first epoch
    result = train(compose_config(run_dir, "experiment=line", "threads=1", "optimizer.lr=10", "logger=wandb"))
    assert result["status"] == "diverged"
    (folder,) = wandb_runs(run_dir)
    run = offline_run(folder)
    assert run["summary"]["status"] == "diverged" and run["exit_code"] == 1


def test_logger_wandb_without_the_package_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # (as if it were not installed: importlib finds no wandb)
    with pytest.raises(ConfigError, match=r'^logger=wandb needs the wandb package: pip install -e "\.\[wandb\]"$'):
        check_declared(compose_config(tmp_path / "run", "logger=[tensorboard,wandb]"))
