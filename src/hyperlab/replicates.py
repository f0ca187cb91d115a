"""Replicates: every configuration run several times, so that a sweep's table can tell a real difference from noise
(hyperlab.sweeps.statistics).

- `repeats=N` runs each configuration N times, as runs `repeat=0` ... `repeat=N-1`, each with a seed of its own derived
  from `seed` and `repeat` (the weights, dropout and batch order; the data's split keeps `data.seed`).
- `data.folds=K` (tables, image folders, digits) runs each configuration K times, as runs `data.fold=0` ...
  `data.fold=K-1`, each validating on another fold of what the test split leaves (hyperlab.data.base).

Both are turned into sweep values on the command line before Hydra reads it (`with_replicates`), so a sweep's every
launcher, its plan, its resume and its run folders (`...,repeat=2`) work as for any swept key; a command line with
replicates is a sweep with or without `-m`. Torch-free: the command line is expanded before torch is imported.
"""

import copy
import hashlib
from typing import Any

from hyperlab.errors import ConfigError

REPEAT_KEY, FOLD_KEY = "repeat", "data.fold"
# what a configuration is run over: the keys `repeats` and `data.folds` sweep, and a seed swept by hand; a sweep's
# runs that differ only in these are one configuration's (its table's statistics, an Optuna trial's runs)
REPLICATE_KEYS = (REPEAT_KEY, FOLD_KEY, "seed")
MAX_REPEATS = 1000


def run_seed(seed: int, repeat: int) -> int:
    """The seed run `repeat` of a configuration trains with: `seed` itself for repeat 0 (so `repeats=1` changes
    nothing), else 32 bits of SHA-256 of (seed, repeat), so that no two (seed, repeat) pairs share a seed by design
    (`seed + repeat` would give seed=1,repeat=0 and seed=0,repeat=1 the same weights)."""
    if repeat == 0:
        return seed
    return int.from_bytes(hashlib.sha256(f"hyperlab seed {seed} repeat {repeat}".encode()).digest()[:4], "big")


def with_run_seed(cfg: Any) -> Any:
    """A new config whose `seed` is the one its `repeat` trains with (`run_seed`); `cfg` is left as it was, so that the
    same config trained twice trains the same run twice."""
    settled = copy.deepcopy(cfg)
    settled.seed = run_seed(cfg.seed, cfg.repeat)
    return settled


def check_replicates(repeats: int, repeat: int) -> None:
    """`repeats` and `repeat` as a composed config has them."""
    if not 1 <= repeats <= MAX_REPEATS:
        raise ConfigError(f"repeats={repeats} is not allowed: expected an integer from 1 to {MAX_REPEATS}")
    if not 0 <= repeat < max(repeats, 1):
        allowed = "0 (repeats=1)" if repeats == 1 else f"an integer from 0 to {repeats - 1} (repeats={repeats})"
        raise ConfigError(f"repeat={repeat} is not allowed: expected {allowed}")


def with_replicates(arguments: list[str], typed: set[str], repeats: int, folds: Any) -> list[str]:
    """The command line `arguments` with the sweep values `repeats` and `data.folds` ask for (`typed`: the keys the
    command line sets), and `-m` when they ask for more than one run. A key typed on the command line is the user's
    choice of one replicate (`repeats=3 repeat=2` reruns the third) and is left alone."""
    added = []
    if repeats > 1 and REPEAT_KEY not in typed:
        added.append(f"{REPEAT_KEY}={','.join(str(i) for i in range(repeats))}")
    if isinstance(folds, int) and folds > 1 and FOLD_KEY not in typed:
        added.append(f"{FOLD_KEY}={','.join(str(i) for i in range(folds))}")
    if not added:
        return arguments
    multirun = any(argument in ("-m", "--multirun") for argument in arguments)
    return [*([] if multirun else ["-m"]), *arguments, *added]


def refuse_swept_counts(swept: set[str]) -> None:
    """`repeats` and `data.folds` take one value: a sweep over them would mix configurations of different sizes."""
    for key in ("repeats", "data.folds"):
        if key in swept:
            raise ConfigError(f"{key} takes one value, not a sweep: every configuration runs {key} times")
