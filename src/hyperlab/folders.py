"""Where a run writes, as Hydra resolvers used by conf/hydra/default.yaml:

- `hyperlab_run_name`: a sweep's run folders are named by the values they set (`lr=0.01,hidden=128,depth=2`);
  TensorBoard names each run by its folder, so `tensorboard --logdir <sweep folder>` lists them by what differs;
- `hyperlab_run_dir`: a run resumed from a checkpoint continues in the checkpoint's own run folder;
- `hyperlab_hydra_subdir`: and Hydra's record of the resuming call goes beside the original's, not over it.
"""

import re
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

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


def resumed_run_dir(ckpt_path: str | None, finetune: Any, new_run_dir: str) -> str:
    """A resumed run's folder: that of `ckpt_path` (`<run>/checkpoints/<file>`). Otherwise, and for `last`
    (with hydra.run.dir given) or a fine-tune (which starts a new run from the checkpoint), `new_run_dir`."""
    if not ckpt_path or ckpt_path == "last" or finetune:
        return new_run_dir
    return str(Path(ckpt_path).resolve().parent.parent)


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
