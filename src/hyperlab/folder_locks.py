"""A run or sweep folder taken by one process: refused to any other, before anything is written into it.

Checked writable, and not another run's (the Hydra callback `WritableFolders`, before Hydra writes into it;
`refuse_taken`, which hyperlab.cli runs on the command line's config) -> made and locked while a run writes into it
(`locked`: a second process is refused at once). The lock is an `fcntl` lock on the folder's `LOCK_FILE`, which the
operating system drops with its process (`lock_folder`; `folder_lock` waits for it, for short writes).
"""

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from hyperlab.errors import ConfigError, RunFolderInUse, exit_for

LOCK_FILE = ".hyperlab.lock"  # in a run or sweep folder: locked by the process writing into it


class WritableFolders(Callback):
    """Refuses, in one line and with status 2, a run or sweep folder that cannot be made, before Hydra tries to
    make it (Hydra's own failure is a traceback); and a run folder that holds a run or is in use (`refuse_taken`),
    before Hydra writes its record of the call (.hydra/) over that run's. Hydra passes a callback's SystemExit on."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        refuse_unwritable(Path(config.hydra.run.dir))
        try:
            refuse_taken(config)
        except RunFolderInUse as error:
            exit_for(error)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        refuse_unwritable(Path(config.hydra.sweep.dir))


def refuse_unwritable(folder: Path) -> None:
    existing = next(path for path in [folder.absolute(), *folder.absolute().parents] if path.exists())
    reason = "not a folder" if not existing.is_dir() else unwritable(existing)
    if reason:
        exit_for(ConfigError(f"cannot make the run folder {folder}: {existing} is {reason} (see paths.log_dir)"))


def unwritable(folder: Path) -> str:
    """Why nothing can be made in `folder` ('' when something can). Tried, not read from its permissions: root may
    write anywhere, but not into /proc, nor a read-only or full file system."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".hyperlab-check-", dir=folder))
    except OSError as error:
        return f"not writable ({error.strerror})"
    return ""


def refuse_taken(config: DictConfig) -> None:
    """`train`'s first refusals (the folder holds a run, or another process writes into it), made from a config with
    its `hydra` node, where Hydra has not yet written its record of the call into the run folder: a refused call
    leaves that run's .hydra/ as it was (hyperlab.cli checks the command line so; `WritableFolders`, any call)."""
    if process_rank() != 0:  # DDP's other processes, started into the folder rank 0 holds (as `train` says)
        return
    run_dir = Path(config.hydra.run.dir)
    resumes = bool(config.get("ckpt_path")) and not config.get("finetune")  # (as `hydra_subdir` says)
    refuse_in_use(run_dir)
    refuse_overwrite(run_dir, resumes, rerun=bool(config.get("resume")))


RANK_VARIABLES = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")  # Lightning's rank_zero_only reads these


def process_rank() -> int:
    """This process's rank among a multi-process run's, as Lightning's `rank_zero_only.rank` reads it from the
    environment (read here before Lightning is imported): 0 for a run of one process."""
    for name in RANK_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


def lock_folder(folder: Path) -> TextIO | None:
    """An exclusive lock on `folder`, held while the returned file stays open; None when another process holds it.
    The operating system drops it with its process, so a killed run leaves no stale lock behind."""
    handle = (folder / LOCK_FILE).open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on `folder`, waiting for the process that holds it (for short writes, such as a record that
    several processes rewrite in turn)."""
    with open(folder / LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


# ------------------------------------------------------------------------------------------------ made and locked
@contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Make the run folder and hold an exclusive lock on it while the run writes into it: a second process given the
    same folder is refused at once."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = lock_folder(run_dir)
    except OSError as error:
        raise ConfigError(f"cannot write the run folder {run_dir}: {error.strerror} (see paths.log_dir)") from None
    if lock is None:
        raise RunFolderInUse(f"{run_dir} is in use by another run (it holds {LOCK_FILE}'s lock)")
    with lock:
        yield


def refuse_overwrite(run_dir: Path, resumes: bool, rerun: bool) -> None:
    """A new run in a folder that holds a run is refused, unless it resumes that run or is asked to re-run it (`rerun`,
    resume=true). Reads only: checked before anything is built, and again under the lock (`run_folder.make_room`)."""
    if not resumes and not rerun and ((run_dir / "metrics.json").exists() or (run_dir / "checkpoints").exists()):
        raise RunFolderInUse(f"{run_dir} already holds a run; refusing to overwrite it (resume=true re-runs it)")


def refuse_in_use(run_dir: Path) -> None:
    """A folder another process is writing into is refused (checked before anything is built; `locked` takes it)."""
    lock = lock_folder(run_dir) if (run_dir / LOCK_FILE).exists() else None
    if lock is None and (run_dir / LOCK_FILE).exists():
        raise RunFolderInUse(f"{run_dir} is in use by another run (it holds {LOCK_FILE}'s lock)")
    if lock is not None:
        lock.close()
