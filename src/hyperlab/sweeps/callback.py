"""The Hydra callback that guards a sweep's folder at its start (a lock: one sweep at a time; no finished runs
unless resuming) and writes its homework table at its end.

Hydra turns a callback's exceptions into warnings, so the callback ends the process with SystemExit where the
sweep must stop (a folder in use: status 2) or report failure (a run failed: status 1, after the table).
"""

import logging
import sys
from pathlib import Path
from typing import Any, TextIO

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from hyperlab.errors import RunFolderInUse, exit_for
from hyperlab.run_folder import LOCK_FILE, lock_folder
from hyperlab.sweeps.table import write_summary

log = logging.getLogger(__name__)
# the open lock file of each sweep this process runs, held until the sweep (or the process) ends; kept here, not
# on the callback, which launchers such as joblib pickle
HELD_LOCKS: dict[Path, TextIO] = {}


class SweepSummary(Callback):
    """`pivot` (two swept keys) and `panels` (a third) shape the heatmap; null picks them from the sweep."""

    def __init__(self, pivot: list[str] | None, panels: str | None) -> None:
        self.pivot = tuple(pivot) if pivot else None
        self.panels = panels

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        folder = Path(config.hydra.sweep.dir)
        folder.mkdir(parents=True, exist_ok=True)
        lock = lock_folder(folder)
        if lock is None:
            exit_for(
                RunFolderInUse(f"the sweep folder {folder} is in use by another sweep (it holds {LOCK_FILE}'s lock)")
            )
        HELD_LOCKS[folder] = lock
        finished = sorted(folder.glob("*/metrics.json")) if folder.is_dir() else []
        if finished and not config.get("resume", False):
            exit_for(RunFolderInUse(
                f"the sweep folder {folder} already holds {len(finished)} finished runs: add resume=true to run only "
                "the missing and failed ones, or leave hydra.sweep.dir out for a new sweep"
            ))  # fmt: skip

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        folder = Path(config.hydra.sweep.dir)
        lock = HELD_LOCKS.pop(folder, None)
        if lock is not None:
            lock.close()
        summary = write_summary(folder, pivot=self.pivot, panels=self.panels)
        counts = ", ".join(f"{n} {status}" for status, n in summary.statuses.items())
        figures = [f"{path.stem}: {path}" for path in (summary.heatmap, summary.curves) if path]
        lines = [f"sweep finished: {counts}", f"table: {summary.markdown} (and {summary.csv.name})", *figures]
        log.info("\n".join(lines + [f"look at it: tensorboard --logdir {folder}"]))
        if summary.statuses.get("failed"):
            print(f"error: {summary.statuses['failed']} run(s) failed: see {summary.markdown}", file=sys.stderr)
            raise SystemExit(1)
