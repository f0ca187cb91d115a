"""Names of a sweep's run folders, made of the values the sweep sets: `lr=0.01,hidden=128,depth=2`.

TensorBoard names each run by its folder, so `tensorboard --logdir <sweep folder>` lists the runs by what
differs between them. Registered as the resolver `hyperlab_run_name` for `hydra.sweep.subdir`.
"""

import re

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


def register_resolver() -> None:
    if not OmegaConf.has_resolver("hyperlab_run_name"):
        OmegaConf.register_new_resolver("hyperlab_run_name", run_name)
