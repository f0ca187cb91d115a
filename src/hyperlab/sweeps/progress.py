"""Where a sweep stands, from its folder: after each run, one line (`[12/64] depth=2,lr=0.01: completed, best
val/acc 0.9712 | best so far 0.9781 (depth=2,hidden=512,lr=0.001) | 4m10s so far, about 18m left`); and, before a
sweep starts, the earlier sweep of the same command that stopped with runs unfinished (`unfinished_twin`)."""

import json
import time
from pathlib import Path
from typing import Any

import yaml

from hyperlab.sweeps.plan import PLAN_FILE, read_plan
from hyperlab.sweeps.runs import FINISHED


def progress_line(sweep_dir: Path, run_name: str) -> str:
    """The sweep's progress after its run `run_name` (every run with a record counts; the time left is estimated from
    the runs that ended since the sweep's plan was written, i.e. since this sweep, or its resume, started)."""
    results = {path.parent.name: read_json(path) for path in sweep_dir.glob("*/metrics.json")}
    plan = read_plan(sweep_dir)
    total = plan.size if plan is not None and plan.size is not None else len(results)
    this = results.get(run_name, {})
    line = f"[{len(results)}/{total}] {run_name}: {this.get('status', 'no record')}"
    if isinstance(this.get("best_score"), (int, float)):
        line += f", best {this.get('monitor')} {this['best_score']:.4f}"
    best = best_so_far(results)
    if best is not None:
        line += f" | best so far {best[1]['best_score']:.4f} ({best[0]})"
    started = (sweep_dir / PLAN_FILE).stat().st_mtime if (sweep_dir / PLAN_FILE).is_file() else None
    if started is not None:
        elapsed = time.time() - started
        ended = sum((sweep_dir / name / "metrics.json").stat().st_mtime >= started for name in results)
        line += f" | {duration(elapsed)} so far"
        if ended and total > len(results):
            line += f", about {duration(elapsed / ended * (total - len(results)))} left"
    return line


def best_so_far(results: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]] | None:
    """The run with the best monitored value (as its monitor's mode says), among those that monitor the same metric
    as the first."""
    scored = [(name, r) for name, r in results.items() if r.get("status") in FINISHED
              and isinstance(r.get("best_score"), (int, float))]  # fmt: skip
    if not scored:
        return None
    monitor = scored[0][1].get("monitor")
    scored = [(name, r) for name, r in scored if r.get("monitor") == monitor]
    sign = -1 if scored[0][1].get("monitor_mode") == "max" else 1
    return min(scored, key=lambda item: sign * item[1]["best_score"])


def duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def unfinished_twin(sweep_dir: Path, task_overrides: list[str]) -> tuple[Path, int, int] | None:
    """An earlier sweep beside `sweep_dir` (the same `logs/<name>/multirun/`) made by the same command line whose plan
    has runs that never ended (interrupted, or not run): its folder, its ended runs and its planned runs."""
    for folder in sorted(sweep_dir.parent.glob("*/"), reverse=True):
        plan = read_plan(folder) if folder != sweep_dir else None
        if plan is None or plan.size is None or not (folder / "multirun.yaml").is_file():
            continue
        hydra = yaml.safe_load((folder / "multirun.yaml").read_text()).get("hydra", {})
        if list(hydra.get("overrides", {}).get("task", [])) != list(task_overrides):
            continue
        statuses = [read_json(path).get("status") for path in folder.glob("*/metrics.json")]
        finished = sum(status in (*FINISHED, "failed") for status in statuses)
        if finished < plan.size:
            return folder, finished, plan.size
    return None
