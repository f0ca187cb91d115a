"""Records lost or invalid (issue 29, point 4), each class of fault crafted here: metrics.json is strict JSON whatever
numbers a run reached (NaN, infinities: null, and listed), and a record that is not JSON is refused by name; a full
disk (a mocked `open` whose writes fail with ENOSPC past the bytes left) leaves a record, in brief if need be, or one
line saying it could not be written, never a temporary file, and a resumed run's earlier record stays in place; a
refused second run leaves the folder's .hydra/ as it was; hyperlab-sweep-table refuses a folder that holds no sweep
and a metric no run recorded; an empty or unwritable paths.log_dir, several values without -m, and Ctrl-C while a
command loads, between a sweep's runs or swallowed by third-party code are each one line."""

import builtins
import errno
import io
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
from contextlib import suppress
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import compose_config
from omegaconf import OmegaConf

from hyperlab import cli
from hyperlab.errors import ConfigError, DataError, NoRoomLeft, RecordNotWritten
from hyperlab.folder_locks import WritableFolders, locked, refuse_unwritable
from hyperlab.json_files import json_text, read_json
from hyperlab.run_folder import make_room
from hyperlab.run_record import RunRecord, read_result
from hyperlab.sweeps.runs import load_sweep
from hyperlab.sweeps.table import table_command
from hyperlab.train import train


def strict(text: str) -> dict:
    """JSON as the standard has it: NaN and Infinity are not JSON."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def temporary_files(folder: Path) -> list[Path]:
    return list(folder.rglob("*.tmp"))


# ------------------------------------------------------------------------------------------------ non-finite numbers
@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_a_non_finite_number_anywhere_is_written_as_null_with_what_it_was(tmp_path, number):
    record = RunRecord("run", tmp_path, 0.0, best_score=number, history=[{"epoch": 1.0, "val/loss": number}],
                       hparams={"trainer.gradient_clip_val": number, "betas": (0.9, number)})  # fmt: skip
    record.fields["metrics"] = {"val/loss": number, "val/acc": 0.5}
    record.write("diverged")
    written = strict((tmp_path / "metrics.json").read_text())
    assert written["metrics"] == {"val/loss": None, "val/acc": 0.5} and written["history"][0]["val/loss"] is None
    places = sorted(entry["at"] for entry in written["non_finite"])
    assert places == [["best_score"], ["history", 0, "val/loss"], ["hparams", "betas", 1],
                      ["hparams", "trainer.gradient_clip_val"], ["metrics", "val/loss"]]  # fmt: skip
    assert {entry["was"] for entry in written["non_finite"]} == {json.dumps(number)}
    read = read_result(tmp_path)  # (what the sweep's table and a resume read: the numbers as the run had them)
    assert read is not None and "non_finite" not in read and read["metrics"]["val/acc"] == 0.5
    for value in (read["best_score"], read["metrics"]["val/loss"], read["hparams"]["betas"][1]):
        assert value == number or math.isnan(value) and math.isnan(number)


@pytest.mark.parametrize(
    "listed",
    [[{"at": ["metrics", "nothing", 3], "was": "NaN"}], [{"at": [], "was": "NaN"}], [{"at": ["name"], "was": "1.5"}],
     ["garbage"], {"at": "x"}, [{"at": ["metrics", "val/acc"], "was": "Infinity"}]],
)  # fmt: skip
def test_a_non_finite_list_that_does_not_fit_its_file_changes_nothing(tmp_path, listed):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"name": "run", "metrics": {"val/acc": 0.5}, "non_finite": listed}))
    assert read_json(path) == {"name": "run", "metrics": {"val/acc": 0.5}}


@pytest.mark.parametrize("text", ["{", "[1, 2]", "\xff\xfe", "[" * 100_000 + "]" * 100_000])
def test_a_record_that_is_not_a_json_object_is_refused_in_one_line(tmp_path, text):
    (tmp_path / "metrics.json").write_bytes(text.encode("latin-1"))
    with pytest.raises(DataError, match=r"metrics.json is refused: ") as refused:
        read_result(tmp_path)
    assert "\n" not in str(refused.value)


@pytest.fixture(scope="module")
def overflowed(tmp_path_factory) -> Path:
    """A real run whose validation loss overflows to infinity before the run is stopped as diverged."""
    run_dir = tmp_path_factory.mktemp("overflowed") / "run"
    train(compose_config(run_dir, "experiment=line", "optimizer.lr=1e9", "trainer.max_epochs=2", "logger=none"))
    return run_dir


def test_a_run_whose_metrics_overflow_writes_strict_json(overflowed):
    written = strict((overflowed / "metrics.json").read_text())
    assert written["metrics"]["val/loss"] is None
    assert {"at": ["metrics", "val/loss"], "was": "Infinity"} in written["non_finite"]
    assert read_result(overflowed)["metrics"]["val/loss"] == math.inf  # type: ignore[index]


# ------------------------------------------------------------------------------------------------ a full disk
class FullFile:
    """A file on a disk with `disk.free` bytes left: a write past them fails as the kernel's does (ENOSPC)."""

    def __init__(self, handle: io.IOBase, disk: SimpleNamespace) -> None:
        self.handle, self.disk = handle, disk

    def write(self, data: str | bytes) -> int:
        if len(data) > self.disk.free:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.disk.free -= len(data)
        return self.handle.write(data)

    def __enter__(self) -> "FullFile":
        return self

    def __exit__(self, *exception: object) -> None:
        self.handle.close()

    def __getattr__(self, name: str) -> object:
        return getattr(self.handle, name)


@pytest.fixture
def full_disk(monkeypatch, tmp_path):
    """`full_disk(free)`: from then on, the files written under tmp_path have `free` bytes in all."""
    real_open = io.open

    def fill(free: int) -> SimpleNamespace:
        disk = SimpleNamespace(free=free)

        def open_on_disk(file, mode="r", *args, **kwargs):
            handle = real_open(file, mode, *args, **kwargs)
            on_disk = isinstance(file, (str, os.PathLike)) and Path(file).absolute().is_relative_to(tmp_path)
            return FullFile(handle, disk) if on_disk and set(mode) & set("wxa+") else handle

        monkeypatch.setattr(io, "open", open_on_disk)
        monkeypatch.setattr(builtins, "open", open_on_disk)
        return disk

    return fill


def long_record(run_dir: Path) -> RunRecord:
    history = [{"epoch": float(epoch), "val/loss": 1.0 / epoch, "val/acc": 0.5} for epoch in range(1, 300)]
    record = RunRecord("run", run_dir, 0.0, epochs=299, history=history, hparams={"model.hidden": 16})
    record.fields["metrics"] = {"val/acc": 0.5, "test/acc": 0.75}
    return record


def test_a_disk_too_full_for_the_whole_record_gets_it_in_brief(tmp_path, full_disk):
    full_disk(1500)
    long_record(tmp_path).write("completed")
    written = strict((tmp_path / "metrics.json").read_text())
    assert written["status"] == "completed" and written["metrics"] == {"val/acc": 0.5, "test/acc": 0.75}
    assert "history" not in written and "ENOSPC: No space left on device" in written["incomplete"]
    assert not temporary_files(tmp_path)


def test_a_disk_too_full_for_any_record_is_one_line_naming_the_folder_and_leaves_no_temporary_file(tmp_path, full_disk):
    full_disk(0)
    with pytest.raises(RecordNotWritten) as lost:
        long_record(tmp_path).write("failed", "OSError: [Errno 28] No space left on device")
    assert str(lost.value) == (f"{tmp_path}: metrics.json could not be written (ENOSPC: No space left on device): "
                               "the run ended failed: OSError: [Errno 28] No space left on device")  # fmt: skip
    assert not list(tmp_path.iterdir())


def test_a_run_that_fills_the_disk_ends_in_one_line_and_keeps_a_record(tmp_path, full_disk):
    config = compose_config(tmp_path / "run", "experiment=blobs", "trainer.max_epochs=1", "logger=none")
    full_disk(1500)  # (its record, but not its config.yaml)
    with pytest.raises(NoRoomLeft, match=r"/run: ENOSPC: No space left on device: the run stopped \(metrics"):
        train(config)
    written = strict((tmp_path / "run" / "metrics.json").read_text())
    assert written["status"] == "failed" and "No space left on device" in written["error"]
    assert not temporary_files(tmp_path)


def test_a_resume_on_a_full_disk_keeps_the_earlier_record_in_place(overflowed, tmp_path, full_disk):
    run_dir = tmp_path / "run"
    shutil.copytree(overflowed, run_dir)
    before = (run_dir / "metrics.json").read_bytes()
    config = compose_config(run_dir, "experiment=line", "optimizer.lr=1e9", "trainer.max_epochs=4", "logger=none",
                            f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}")  # fmt: skip
    full_disk(0)
    with pytest.raises(RecordNotWritten, match="the earlier attempt's record is back in place$"):
        train(config)
    assert (run_dir / "metrics.json").read_bytes() == before
    assert not (run_dir / "attempts").exists() and not temporary_files(run_dir)


def test_no_room_to_set_the_earlier_attempt_aside_is_one_line_and_moves_nothing(tmp_path, monkeypatch):
    (tmp_path / "metrics.json").write_text("{}")

    def no_room(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "mkdir", no_room)
    with pytest.raises(ConfigError, match=r"cannot set the earlier attempt aside in .*: ENOSPC: No space left"):
        make_room(tmp_path, resumes=True, rerun=False)
    assert (tmp_path / "metrics.json").read_text() == "{}"


# ------------------------------------------------------------------------------------------------ a refused run
def finished_run(folder: Path) -> dict[str, bytes]:
    """A finished run's folder with its Hydra record (.hydra/ and .hydra/resumed/): what a refusal must not touch."""
    hydra = {f"{sub}{name}": f"# the first call's {name}\n".encode() for sub in ("", "resumed/")
             for name in ("config.yaml", "hydra.yaml", "overrides.yaml")}  # fmt: skip
    for name, content in hydra.items():
        (folder / ".hydra" / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / ".hydra" / name).write_bytes(content)
    (folder / "metrics.json").write_text('{"status": "completed"}\n')
    (folder / "checkpoints").mkdir()
    return hydra


def hydra_record(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder / ".hydra")): path.read_bytes() for path in (folder / ".hydra").rglob("*.yaml")}


def test_a_second_run_refused_on_a_finished_runs_folder_leaves_its_hydra_record_as_it_was(tmp_path):
    run_dir = tmp_path / "run"
    hydra = finished_run(run_dir)
    command = [str(Path(sys.executable).parent / "hyperlab-train"), f"hydra.run.dir={run_dir}", "seed=7"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert (done.returncode, done.stderr) == (
        2, f"error: {run_dir} already holds a run; refusing to overwrite it (resume=true re-runs it)\n"
    ), done.stderr[-3000:]  # fmt: skip
    assert hydra_record(run_dir) == hydra and not (run_dir / "train.log").exists()


def test_a_run_on_a_folder_in_use_is_refused_before_hydra_writes_into_it(tmp_path, capsys):
    run_dir = tmp_path / "run"
    hydra = finished_run(run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    last.write_bytes(b"")
    in_use = f"{run_dir} is in use by another run (it holds .hyperlab.lock's lock)"
    with locked(run_dir):
        with pytest.raises(ConfigError, match=re.escape(in_use)):  # the command line's check (a resume)
            cli.check_command_line("train", [f"ckpt_path={last}", "trainer.max_epochs=9"])
        with pytest.raises(SystemExit) as refused:  # Hydra's callback, for a call whose check is Hydra's (a re-run)
            WritableFolders().on_run_start(
                OmegaConf.create(
                    {"hydra": {"run": {"dir": str(run_dir)}}, "resume": True, "ckpt_path": None, "finetune": {}}
                )
            )
    assert refused.value.code == 2 and capsys.readouterr().err == f"error: {in_use}\n"
    assert hydra_record(run_dir) == hydra


# ------------------------------------------------------------------------------------------------ the sweep table
def test_a_sweeps_runs_with_a_record_in_brief_or_not_json_are_listed_with_why(tmp_path, full_disk):
    for name in ("brief", "garbled"):
        (tmp_path / name / ".hydra").mkdir(parents=True)
        (tmp_path / name / ".hydra" / "overrides.yaml").write_text(f"- seed={len(name)}\n")
    (tmp_path / "garbled" / "metrics.json").write_text('{"status": "compl')
    full_disk(1500)
    long_record(tmp_path / "brief").write("completed")
    runs = {run.folder.name: run for run in load_sweep(tmp_path).runs if run.folder is not None}
    assert runs["brief"].status == "completed" and "could not be written (ENOSPC" in runs["brief"].note
    assert runs["garbled"].status == "interrupted" and "metrics.json is refused: it is not JSON" in runs["garbled"].note


def table_config(folder: Path, **keys: str) -> object:
    return OmegaConf.create({"folder": str(folder), "metric": "best", "sort": None, "pivot": None, "panels": None,
                             **keys})  # fmt: skip


def test_the_sweep_table_refuses_a_folder_that_holds_no_sweep_and_keeps_the_users_summary(tmp_path):
    (tmp_path / "summary.md").write_text("my own notes\n")
    (tmp_path / "data").mkdir()
    with pytest.raises(ConfigError, match=rf"^folder={tmp_path} is not allowed: it holds no sweep \(no multirun"):
        table_command(table_config(tmp_path))
    assert (tmp_path / "summary.md").read_text() == "my own notes\n" and not (tmp_path / "summary.csv").exists()


@pytest.mark.parametrize("key", ["metric", "sort"])
def test_the_sweep_table_refuses_a_metric_no_run_recorded_naming_those_they_did(tmp_path, key):
    for lr in ("0.1", "0.01"):
        run = tmp_path / f"lr={lr}"
        (run / ".hydra").mkdir(parents=True)
        (run / ".hydra" / "overrides.yaml").write_text(f"- optimizer.lr={lr}\n")
        (run / "metrics.json").write_text(json_text({"status": "completed", "metrics": {"val/acc": 0.9,
                                                     "test/acc": math.nan}, "wall_time_s": 2.0}))  # fmt: skip
    with pytest.raises(ConfigError) as refused:
        table_command(table_config(tmp_path, **{key: "bogus"}))
    assert str(refused.value) == (
        f"{key}=bogus is not allowed: expected best or a metric the runs recorded: test/acc, val/acc, wall_time_s"
    )
    assert not (tmp_path / "summary.md").exists()
    table_command(table_config(tmp_path, **{key: "test/acc"}))  # (a NaN the runs recorded: a metric all the same)
    assert (tmp_path / "summary.md").is_file()


# ------------------------------------------------------------------------------------------------ the command line
def test_an_empty_log_folder_is_refused_before_the_run_goes_under_the_root():
    with pytest.raises(ConfigError, match=r"^paths.log_dir='' is not allowed: expected a folder for the runs \(logs\)"):
        cli.check_command_line("train", ["paths.log_dir="])


def test_several_values_without_m_are_refused_in_one_line_unless_repeats_add_it():
    with pytest.raises(ConfigError, match=r"^optimizer.lr=0.1,0.01 is not allowed without -m: several values make a"):
        cli.check_command_line("train", ["optimizer.lr=0.1,0.01"])
    assert cli.check_command_line("train", ["optimizer.lr=0.1,0.01", "repeats=2"])[0] == "-m"  # (-m added for them)


def test_a_log_folder_nothing_can_be_made_in_is_refused_in_one_line(capsys):
    with pytest.raises(SystemExit) as refused:
        refuse_unwritable(Path("/proc/logs/digits"))
    assert refused.value.code == 2
    line = capsys.readouterr().err
    assert line.startswith("error: cannot make the run folder /proc/logs/digits: /proc is not writable (") and (
        line.count("\n") == 1
    )


# ------------------------------------------------------------------------------------------------ Ctrl-C
# runs an entry point (`module:function`, or a module as `python -m` runs it) and sends the process SIGINT when it
# first imports the module named first: no timing luck
SIGINT_AT_IMPORT = """
import importlib.abc, os, runpy, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # (as in a terminal, whatever the tests' parent ignores)
at, entry, sys.argv = sys.argv[1], sys.argv[2], sys.argv[2:]
class SignalAt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == at:
            os.kill(os.getpid(), signal.SIGINT)
sys.meta_path.insert(0, SignalAt())
module, _, function = entry.partition(":")
if function:
    getattr(__import__(module, fromlist=[function]), function)()
else:
    runpy.run_module(module, run_name="__main__")
"""


@pytest.mark.parametrize(
    ("module", "entry"),
    [("hydra", "hyperlab.cli:train_main"), ("torch", "hyperlab train")],
    ids=["hyperlab-train", "python -m hyperlab train"],
)
def test_ctrl_c_while_a_command_loads_is_one_line_and_status_130(tmp_path, module, entry):
    done = subprocess.run([sys.executable, "-c", SIGINT_AT_IMPORT, module, *entry.split(), f"paths.log_dir={tmp_path}"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)  # fmt: skip
    assert (done.returncode, done.stderr) == (130, "interrupted: stopped by SIGINT\n"), done.stderr[-3000:]
    assert not list(tmp_path.iterdir())


def swallowed() -> None:
    """Ctrl-C while a module loads, swallowed by third-party code, and the next use of the half-loaded module."""
    with suppress(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
    raise AttributeError("module 'numpy._core' has no attribute '_multiarray_umath'")


def between_runs() -> None:
    """Ctrl-C between a sweep's runs, where Hydra's code, not a run's, is running (so as while torch loads)."""
    raise KeyboardInterrupt


@pytest.mark.parametrize("stopped", [between_runs, swallowed])
def test_ctrl_c_while_a_command_runs_is_one_line_and_status_130_wherever_it_comes(monkeypatch, capsys, stopped):
    monkeypatch.setattr(sys, "argv", ["hyperlab-train", "-m", "seed=1,2"])
    monkeypatch.setattr(cli.hydra, "main", lambda *args, **kwargs: lambda task: stopped)
    monkeypatch.setattr(cli, "check_command_line", lambda name, arguments: arguments)
    handler = signal.getsignal(signal.SIGINT)
    try:
        cli.train_main()
    except BaseException as stopping:  # (a KeyboardInterrupt let through would stop the tests themselves)
        ended = stopping
    assert isinstance(ended, SystemExit) and ended.code == 130
    assert capsys.readouterr().err == "interrupted: stopped by SIGINT\n"
    assert signal.getsignal(signal.SIGINT) is handler  # (the command's own handler, for its time only)
