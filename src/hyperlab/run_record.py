"""A run's results in its folder: its outcome (`RunRecord`: metrics.json, however the run ends, in brief on a full
disk), read back by a resumed run (`read_result`), and its other results (`write_config`, `write_preprocessing`).
Each file is written whole or not at all, and its JSON is strict (hyperlab.json_files).
"""

import os
import time
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from hyperlab.errors import RecordNotWritten
from hyperlab.folder_locks import lock_folder
from hyperlab.json_files import json_text, read_json, reason_of, write_atomically

LIGHTNING_STEP_KEY = "step"  # a logged value of this name is the step Lightning logs at, not a metric


class RunRecord:
    """A run's metrics.json: filled in as the run goes, written once when it ends, however it ends (completed,
    diverged, failed, interrupted; an evaluation's: evaluated). `earlier`: where `make_room` set a resumed run's
    earlier record aside (hyperlab.run_folder)."""

    def __init__(self, name: str, run_dir: Path, started: float, **fields: Any) -> None:
        self.path = run_dir / "metrics.json"
        self.started = started
        self.written = False
        self.earlier: Path | None = None
        self.fields: dict[str, Any] = {"name": name, "metrics": {}, **fields, "run_dir": str(run_dir), **slurm_job()}

    def write(self, status: str, error: str | None = None) -> dict[str, Any]:
        """Write metrics.json (atomically: a kill leaves the old file or the new one); once per attempt, written or
        not (a run that fails for want of room is not recorded again as failed)."""
        result = {"name": self.fields["name"], "status": status, "error": error, **self.fields}
        result["wall_time_s"] = round(time.perf_counter() - self.started, 3)
        if not self.written:
            self.written = True
            self.save(result)
        return result

    def save(self, result: dict[str, Any]) -> None:
        try:
            write_atomically(self.path, json_text(result, indent=2))
        except OSError as refused:
            self.save_brief(result, refused)

    def save_brief(self, result: dict[str, Any], refused: OSError) -> None:
        """On a full disk, the record in brief (`brief`); when even that cannot be written, the earlier attempt's
        record is put back in place, and RecordNotWritten says what was lost."""
        try:
            write_atomically(self.path, json_text(brief(result, refused), indent=2))
        except OSError:
            ended = f"the run ended {result['status']}" + (f": {result['error']}" if result["error"] else "")
            kept = "; the earlier attempt's record is back in place" if self.put_back() else ""
            raise RecordNotWritten(
                f"{self.path.parent}: metrics.json could not be written ({reason_of(refused)}): {ended}{kept}"
            ) from None

    def put_back(self) -> bool:
        """The earlier attempt's record back where this attempt's could not be written (and its attempts/<n>/ gone,
        with attempts/, when that leaves them empty)."""
        if self.earlier is None or not (self.earlier / "metrics.json").is_file() or self.path.exists():
            return False
        (self.earlier / "metrics.json").rename(self.path)  # (a rename takes no room)
        for folder in (self.earlier, self.earlier.parent):
            if any(folder.iterdir()):
                break
            folder.rmdir()
        return True


def brief(result: dict[str, Any], error: OSError) -> dict[str, Any]:
    """A run's record for a disk too full for the whole of it: how the run ended and its final metrics, without its
    lists and tables (history, hparams, ...), and why (`incomplete`)."""
    kept = {key: value for key, value in result.items() if key == "metrics" or not isinstance(value, (list, dict))}
    return {**kept, "incomplete": f"the whole record could not be written ({reason_of(error)}): this is its summary"}


def slurm_job() -> dict[str, str]:
    """The SLURM job running this run as squeue, sacct and submitit's folders name it (`<array job>_<task>` for a job
    array's task, else the job id): `{"slurm_job": ...}`, or {} outside SLURM."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    job = f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID")
    return {"slurm_job": job} if job else {}


def record_unstarted(name: str, run_dir: Path, status: str, error: str, monitor: str, monitor_mode: str) -> None:
    """A run that ended before it started training (a sweep's run refused: `failed`; a signal while it was being
    built: `interrupted`), in a folder Hydra made for it: its metrics.json says why, never over an earlier one."""
    lock = lock_folder(run_dir) if run_dir.is_dir() else None
    if lock is None:  # no folder, or another process is writing into it
        return
    with lock:
        if not (run_dir / "metrics.json").exists():
            record = RunRecord(name, run_dir, time.perf_counter(), monitor=monitor, monitor_mode=monitor_mode)
            record.write(status, error)


def scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """Logged metrics as a record's numbers, without Lightning's `step` key (the step the loggers get, no metric: the
    fast loop logs it with its test metrics, tasks.fast_loop)."""
    return {key: round(float(value), 6) for key, value in sorted(metrics.items()) if key != LIGHTNING_STEP_KEY}


def read_result(run_dir: Path) -> dict[str, Any] | None:
    """The run's metrics.json, None when it has none."""
    path = run_dir / "metrics.json"
    return read_json(path) if path.is_file() else None


# ------------------------------------------------------------------------------------------------ other results
def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    """config.yaml: the run's resolved config."""
    write_atomically(run_dir / "config.yaml", OmegaConf.to_yaml(config))


def write_preprocessing(run_dir: Path, state: dict[str, Any]) -> None:
    """`preprocessing.json`: what a table's datamodule fitted on the training rows and applied (also in every
    checkpoint); nothing for data without fitted state."""
    if state:
        write_atomically(run_dir / "preprocessing.json", json_text(state, indent=2))
