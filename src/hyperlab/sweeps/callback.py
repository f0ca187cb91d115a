"""The Hydra callback that guards a sweep's folder at its start (a lock: one sweep at a time; no finished runs
unless resuming), writes its plan (every run it is meant to make: hyperlab.sweeps.plan), and writes its homework
table at its end, accounting for every planned run.

Hydra turns a callback's exceptions into warnings, so the callback ends the process with SystemExit where the
sweep must stop (a folder in use: status 2) or report failure (a planned run that did not complete, diverge or get
pruned: status 1, after the table). A sweep that ends another way (Ctrl-C, a launcher that lost a job) gets its
table from `finish_open_sweeps`, which the entry point calls whatever happened.
"""

import logging
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

import yaml
from hydra.core.global_hydra import GlobalHydra
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from hyperlab.errors import ConfigError, RunFolderInUse, exit_for
from hyperlab.folder_locks import LOCK_FILE, lock_folder
from hyperlab.run_folder import parse_overrides
from hyperlab.sweeps.plan import plan_sweep, write_plan
from hyperlab.sweeps.progress import unfinished_twin
from hyperlab.sweeps.table import Summary, write_summary

TENSORBOARD_URL = "http://localhost:6006/"  # TensorBoard's own default address
REGEX_KEPT = "^()|,$\\"  # what a run filter's regex keeps unescaped in an address (readable as printed)
TENSORBOARD_TICKS = 40  # the most runs TensorBoard's Scalars, Images and Text tabs tick by default

log = logging.getLogger(__name__)


@dataclass
class OpenSweep:
    lock: TextIO
    pivot: tuple[str, ...] | None
    panels: str | None


# each sweep this process runs, with its folder's open lock, until its table is written; kept here, not on the
# callback, which launchers such as joblib pickle
OPEN_SWEEPS: dict[Path, OpenSweep] = {}


class SweepSummary(Callback):
    """`pivot` (two swept keys) and `panels` (a third) shape the heatmap; null picks them from the sweep."""

    def __init__(self, pivot: list[str] | None, panels: str | None) -> None:
        self.pivot = tuple(pivot) if pivot else None
        self.panels = panels

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        folder = Path(config.hydra.sweep.dir)
        try:
            plan = plan_sweep(config, GlobalHydra.instance().config_loader())
        except ConfigError as error:
            exit_for(error)
        refuse_restart(config, folder)
        folder.mkdir(parents=True, exist_ok=True)
        lock = lock_folder(folder)
        if lock is None:
            exit_for(
                RunFolderInUse(f"the sweep folder {folder} is in use by another sweep (it holds {LOCK_FILE}'s lock)")
            )
        finished = sorted(folder.glob("*/metrics.json")) if folder.is_dir() else []
        if finished and not config.get("resume", False):
            lock.close()
            exit_for(RunFolderInUse(
                f"the sweep folder {folder} already holds {len(finished)} finished runs: add resume=true to run only "
                "the missing and failed ones, or leave hydra.sweep.dir out for a new sweep"
            ))  # fmt: skip
        write_plan(folder, plan)
        OPEN_SWEEPS[folder] = OpenSweep(lock, self.pivot, self.panels)
        if plan.size is not None:
            log.info(f"sweep of {plan.size} runs in {folder}")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        folder = Path(config.hydra.sweep.dir)
        summary = close_sweep(folder)
        if summary is None:
            return
        log.info("\n".join([f"sweep finished: {summary.accounted}", *summary_lines(summary, folder)]))
        if summary.unfinished:
            print(f"error: {summary.unfinished} planned run(s) did not complete: see {summary.markdown}",
                  file=sys.stderr)  # fmt: skip
            raise SystemExit(1)


def refuse_restart(config: DictConfig, folder: Path) -> None:
    """The same command as an earlier sweep that stopped with runs unfinished would start it again from scratch:
    refused, saying how to finish that one (`resume=false` typed on the command line starts anew all the same)."""
    task = list(config.hydra.overrides.task)
    if "resume=false" in task or config.get("resume", False):
        return
    twin = unfinished_twin(folder, task)
    if twin is not None:
        earlier, ended, planned = twin
        again = shlex.join(["hyperlab-train", "-m", *task, f"hydra.sweep.dir={earlier}", "resume=true"])
        exit_for(ConfigError(
            f"the same sweep stopped in {earlier} with {planned - ended} of its {planned} runs unfinished: finish it "
            f"with `{again}` (or add resume=false to start a new one)"
        ))  # fmt: skip


def close_sweep(folder: Path) -> Summary | None:
    """Write the table of a sweep this process runs and let go of its folder (None: not one of ours)."""
    sweep = OPEN_SWEEPS.pop(folder, None)
    if sweep is None:
        return None
    try:
        return write_summary(folder, pivot=sweep.pivot, panels=sweep.panels)
    finally:
        sweep.lock.close()


def summary_lines(summary: Summary, folder: Path) -> list[str]:
    figures = [f"{path.stem}: {path}" for path in (summary.heatmap, summary.curves, summary.playground) if path]
    files = ", ".join(path.name for path in (summary.csv, summary.configurations) if path)
    lines = [f"table: {summary.markdown} (and {files})", *figures]
    lines += [f"look at it: tensorboard --logdir {folder}", *filtered_views(summary)]
    return [*lines, *best_run_lines(summary, folder), *configuration_lines(summary)]


def configuration_lines(summary: Summary) -> list[str]:
    """With replicates: the best configuration's mean ± std and how many configurations cannot be told apart from
    it, pointing to summary.md, which says which (hyperlab.sweeps.comparisons)."""
    return [f"{summary.conclusion} (see {summary.markdown})"] if summary.conclusion else []


def filtered_views(summary: Summary) -> list[str]:
    """Past 40 TensorBoard runs its Scalars, Custom Scalars, Images and Text tabs tick none until a run filter
    matches 40 or fewer (Time Series and HParams show them all): the addresses that open two of them filtered."""
    if summary.tensorboard_runs <= TENSORBOARD_TICKS:
        return []
    lines = [f"  the sweep's figures:      {tensorboard_address('images', '^summary$')}"]
    if summary.leaders:
        leaders = "^(" + "|".join(re.escape(name) for name in summary.leaders) + ")$"
        best = tensorboard_address("custom_scalars", leaders)
        lines.insert(0, f"  the best {len(summary.leaders)}, train vs val: {best}")
    return lines


def tensorboard_address(tab: str, runs: str, base: str = TENSORBOARD_URL) -> str:
    """The address of TensorBoard's `tab` with its run filter set to the regex `runs` (`=` written %3D: TensorBoard
    reads the address's `key=value` pairs)."""
    return f"{base}#{tab}&regexInput={quote(runs, safe=REGEX_KEPT)}"


def best_run_lines(summary: Summary, folder: Path) -> list[str]:
    """The best run, its best checkpoint, and the commands that fine-tune and evaluate it, to paste as printed (with
    the data the sweep was given: its experiment, data.* and paths.* keys)."""
    best = summary.best
    if best is None or best.folder is None:
        return []
    checkpoint = best.result["best_checkpoint"]
    given = sweep_arguments(folder)
    kept = [a for a in given if a.split("=", 1)[0].lstrip("+") not in ("data.folds", "data.fold")]  # (one run, not K)
    data = [a for a in kept if a.split("=", 1)[0].lstrip("+").startswith(("data.", "paths."))]
    chosen = [a for a in kept if a.split("=", 1)[0].lstrip("+") in ("experiment", "data")]
    finetune = shlex.join(["hyperlab-finetune", f"ckpt_path={checkpoint}", *chosen, *data])
    evaluate = shlex.join(["hyperlab-eval", f"ckpt_path={checkpoint}", *data])
    return [f"best run: {best.folder.name} ({summary.best_label})", f"  its folder:      {best.folder}",
            f"  best checkpoint: {checkpoint}", f"  fine-tune it:    {finetune}",
            f"  evaluate it:     {evaluate}"]  # fmt: skip


def sweep_arguments(folder: Path) -> list[str]:
    """The sweep's command-line overrides that every run got (one value each), as typed."""
    multirun = folder / "multirun.yaml"
    if not multirun.is_file():
        return []
    task = yaml.safe_load(multirun.read_text()).get("hydra", {}).get("overrides", {}).get("task", [])
    return [o.input_line for o in parse_overrides({}, task) if not o.is_sweep_override()]


def finish_open_sweeps(arguments: list[str]) -> None:
    """The table of a sweep that ended before Hydra's end of sweep (Ctrl-C, a launcher that lost a job): what
    finished, the runs that did not, and the command that finishes it."""
    for folder in list(OPEN_SWEEPS):
        if not any(folder.glob("*/.hydra")):  # refused before its first run (the refusal said why): no table
            OPEN_SWEEPS.pop(folder).lock.close()
            continue
        summary = close_sweep(folder)
        if summary is None:
            continue
        lines = [f"sweep ended: {summary.accounted}", *summary_lines(summary, folder)]
        if summary.unfinished:
            kept = [a for a in arguments if not a.startswith(("hydra.sweep.dir=", "resume=")) and a not in RUN_FLAGS]
            again = shlex.join(["hyperlab-train", "-m", *kept, f"hydra.sweep.dir={folder}", "resume=true"])
            lines.append(f"to finish it: {again}")
        print("\n".join(lines), file=sys.stderr)


RUN_FLAGS = ("-m", "--multirun")
