"""Where a run writes: Hydra resolvers used by conf/hydra/default.yaml, the folder lock, and the check that a
folder can be made.


- `hyperlab_run_name`: a sweep's run folders are named by the values they set (`lr=0.01,hidden=128,depth=2`);
  TensorBoard names each run by its folder, so `tensorboard --logdir <sweep folder>` lists them by what differs;
- `hyperlab_run_dir`: a run resumed from a checkpoint continues in the checkpoint's own run folder;
- `hyperlab_hydra_subdir`: and Hydra's record of the resuming call goes beside the original's, not over it.
"""

import fcntl
import os
import re
import sys
from pathlib import Path
from typing import Any, TextIO

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

LOCK_FILE = ".hyperlab.lock"  # in a run or sweep folder: locked by the process writing into it
_NEXT_ITEM = re.compile(r",(?=[\w.+~/-]+=)")  # a comma that starts the next key=value, not one inside a list


def run_name(override_dirname: str) -> str:
    """`optimizer.lr=0.01,model.hidden=128` -> `lr=0.01,hidden=128`; a key keeps its group where two would clash."""
    if not override_dirname:
        return "defaults"
    items = [item.split("=", 1) for item in _NEXT_ITEM.split(override_dirname)]
    keys = [key.lstrip("+~") for key, _ in items]
    short = [key.rsplit(".", 1)[-1] for key in keys]
    names = [name if short.count(name) == 1 else key for name, key in zip(short, keys, strict=True)]
    return ",".join(f"{name}={value.replace('/', '_')}" for name, (_, value) in zip(names, items, strict=True))


def folder_name(name: str) -> str:
    """`name` as one plain folder name: the characters of run names are kept, any other (a `/`) becomes `_`, and
    leading dots go (a name read from a file must never lead out of the folder it is put in)."""
    return re.sub(r"[^\w.=,+-]", "_", name).lstrip(".") or "run"


def resumed_run_dir(ckpt_path: str | None, finetune: Any, new_run_dir: str) -> str:
    """A resumed run's folder: that of `ckpt_path` when the file is in one (`<run>/checkpoints/<file>`).
    Otherwise `new_run_dir`: for `last` (with hydra.run.dir given), a fine-tune (which starts a new run from the
    checkpoint), or a file elsewhere (which hyperlab-train refuses unless hydra.run.dir names the folder)."""
    if not ckpt_path or ckpt_path == "last" or finetune:
        return new_run_dir
    checkpoints = Path(ckpt_path).resolve().parent
    return str(checkpoints.parent) if checkpoints.name == "checkpoints" else new_run_dir


def hydra_subdir(ckpt_path: str | None, finetune: Any) -> str:
    return ".hydra/resumed" if ckpt_path and not finetune else ".hydra"


def register_resolvers() -> None:
    for name, function in [
        ("hyperlab_run_name", run_name),
        ("hyperlab_run_dir", resumed_run_dir),
        ("hyperlab_hydra_subdir", hydra_subdir),
    ]:
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)


class WritableFolders(Callback):
    """Refuses, in one line and with status 2, a run or sweep folder that cannot be made, before Hydra tries to
    make it (Hydra's own failure is a traceback). Hydra passes a callback's SystemExit on."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        refuse_unwritable(Path(config.hydra.run.dir))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        refuse_unwritable(Path(config.hydra.sweep.dir))


def refuse_unwritable(folder: Path) -> None:
    existing = next(path for path in [folder.absolute(), *folder.absolute().parents] if path.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        reason = "not a folder" if not existing.is_dir() else "not writable"
        print(
            f"error: cannot make the run folder {folder}: {existing} is {reason} (see paths.log_dir)", file=sys.stderr
        )
        raise SystemExit(2)


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
